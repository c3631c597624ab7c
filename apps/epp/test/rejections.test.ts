import { rejectionStatus } from "@dynamo/ext-proc";
import { OverloadedError, QueueOverloadedError } from "@dynamo/router-service";
import { describe, expect, it } from "vitest";
import { rejectionOf } from "../src/rejections.js";

describe("rejections", () => {
  it("answers a router-queue overload with 429 and retry-after, a busy pool with 503", () => {
    const shed = rejectionOf(new QueueOverloadedError("router queue full"));
    expect(rejectionStatus(shed)).toBe(429);
    expect(shed.retryAfterSecs).toBe(1);
    expect(shed.message).toMatch(/router queue full/);
    expect(rejectionStatus(rejectionOf(new OverloadedError("busy")))).toBe(503);
  });
});
