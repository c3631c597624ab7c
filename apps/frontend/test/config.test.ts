import { describe, expect, it } from "vitest";
import { podWorkerId } from "@dynamo/discovery";
import { FrontendConfigError, frontendConfig } from "../src/config.js";

describe("frontendConfig", () => {
  it("defaults: port 8000, the engine on 8001, the worker id from POD_NAME as discovery derives it", () => {
    const config = frontendConfig([], { POD_NAME: "dynamo-worker-abc" });
    expect(config).toMatchObject({
      port: 8000,
      host: "0.0.0.0",
      dataParallelSize: 1,
      enforceDisagg: false,
      workerId: podWorkerId("dynamo-worker-abc"),
      tokenizer: { embedded: "qwen3" },
    });
    expect(config.engineUrl.href).toBe("http://127.0.0.1:8001/");
  });

  it("flags win over the DYN_* variables", () => {
    const env = { DYN_HTTP_PORT: "9000", DYN_ENFORCE_DISAGG: "true", DYN_WORKER_ID: "5", POD_NAME: "p" };
    expect(frontendConfig([], env)).toMatchObject({ port: 9000, enforceDisagg: true, workerId: 5n });
    expect(frontendConfig(["--port=9100", "--worker-id", "6", "--tokenizer=none"], env)).toMatchObject({
      port: 9100,
      workerId: 6n,
      tokenizer: null,
    });
  });

  it("reports every bad value at once, naming the flag or variable", () => {
    try {
      frontendConfig(["--port=70000", "--engine-url=nowhere", "--router-mode=kv"], {
        DYN_ENFORCE_DISAGG: "perhaps",
        DYN_DATA_PARALLEL_SIZE: "0",
      });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(FrontendConfigError);
      const text = (error as Error).message;
      for (const name of ["--port", "--engine-url", "--router-mode", "DYN_ENFORCE_DISAGG", "DYN_DATA_PARALLEL_SIZE"])
        expect(text).toContain(name);
    }
    expect(() => frontendConfig(["--no-such-flag"], {})).toThrow(FrontendConfigError);
  });
});
