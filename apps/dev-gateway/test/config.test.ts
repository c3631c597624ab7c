import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { configFrom } from "../src/config.js";

describe("dev gateway configuration", () => {
  it("defaults to TLS without verification towards 127.0.0.1:9002 and Envoy's reset close", () => {
    expect(configFrom([], {})).toEqual({
      port: 8080,
      host: "127.0.0.1",
      extProc: { target: "127.0.0.1:9002", tls: true, closeMode: "reset" },
    });
  });

  it("reads flags before DEV_GATEWAY_* variables", () => {
    const config = configFrom(["--port", "9000", "--endpoints", "10.0.0.1:8000, 10.0.0.2:8000"], {
      DEV_GATEWAY_PORT: "1",
      DEV_GATEWAY_EPP: "epp:9002",
      DEV_GATEWAY_EPP_TLS: "off",
      DEV_GATEWAY_CLOSE_MODE: "graceful",
    });
    expect(config).toEqual({
      port: 9000,
      host: "127.0.0.1",
      extProc: { target: "epp:9002", tls: false, closeMode: "graceful" },
      endpoints: ["10.0.0.1:8000", "10.0.0.2:8000"],
    });
  });

  it("takes several endpoint pickers and how to check their health", () => {
    const config = configFrom(["--epp", "10.0.0.1:9002, 10.0.0.2:9002", "--epp-health-port", "9003"], {
      DEV_GATEWAY_EPP_HEALTH_INTERVAL_MS: "250",
    });
    expect(config).toMatchObject({
      extProc: { target: "10.0.0.1:9002, 10.0.0.2:9002" },
      healthCheck: { port: 9003, intervalMs: 250 },
    });
    expect(() => configFrom(["--epp", "10.0.0.1:9002,,10.0.0.2:9002"], {})).toThrow(/--epp \/ DEV_GATEWAY_EPP/);
    expect(() => configFrom(["--epp-health-port", "x"], {})).toThrow(/--epp-health-port/);
    expect(() => configFrom([], { DEV_GATEWAY_EPP_HEALTH_INTERVAL_MS: "0" })).toThrow(
      /DEV_GATEWAY_EPP_HEALTH_INTERVAL_MS/,
    );
  });

  it("takes a CA file for verified TLS", () => {
    const dir = mkdtempSync(join(tmpdir(), "devgw-"));
    writeFileSync(join(dir, "ca.pem"), "PEM");
    const config = configFrom(["--epp-tls", join(dir, "ca.pem")], {});
    expect(config !== "help" && config.extProc.tls).toEqual({ ca: Buffer.from("PEM") });
  });

  it("names the setting to fix on bad values", () => {
    expect(() => configFrom(["--port", "http"], {})).toThrow(/--port \/ DEV_GATEWAY_PORT/);
    expect(() => configFrom([], { DEV_GATEWAY_CLOSE_MODE: "slam" })).toThrow(/DEV_GATEWAY_CLOSE_MODE/);
    expect(configFrom(["--help"], {})).toBe("help");
  });
});
