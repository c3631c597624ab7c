import nx from "@nx/eslint-plugin";
import tseslint from "typescript-eslint";

export default [
  { ignores: ["**/dist/**", "**/node_modules/**", "**/.nx/**", "reports/**"] },
  ...nx.configs["flat/base"],
  ...nx.configs["flat/typescript"],
  {
    files: ["**/*.ts"],
    languageOptions: { parser: tseslint.parser },
    rules: {
      // Packages are libraries; apps only compose them. A package importing an app is a layering error.
      "@nx/enforce-module-boundaries": [
        "error",
        {
          enforceBuildableLibDependency: false,
          allow: [],
          depConstraints: [
            { sourceTag: "type:package", onlyDependOnLibsWithTags: ["type:package"] },
            { sourceTag: "type:app", onlyDependOnLibsWithTags: ["type:package"] },
            // deploy/test checks the manifests against the packages' and the EPP's own configuration parsers.
            { sourceTag: "type:deploy", onlyDependOnLibsWithTags: ["type:package", "type:app"] },
          ],
        },
      ],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-non-null-assertion": "off",
      "no-console": "off",
    },
  },
  {
    // Build configuration, not package code: every package's tsup config extends the shared one in tools/.
    files: ["**/tsup.config.ts"],
    rules: { "@nx/enforce-module-boundaries": "off" },
  },
  {
    // An app's tests may start the mocker app as the engine behind it (the frontend sidecar's tests do).
    files: ["apps/*/test/**/*.ts"],
    rules: {
      "@nx/enforce-module-boundaries": [
        "error",
        {
          enforceBuildableLibDependency: false,
          allow: ["@dynamo/mocker"],
          depConstraints: [{ sourceTag: "type:app", onlyDependOnLibsWithTags: ["type:package"] }],
        },
      ],
    },
  },
];
