import { z } from "zod";
import type { WorkerInfo } from "../worker.js";
import { workerFromSpec, workerSpecSchema, workerToSpec } from "../worker-spec.js";

const registrationSchema = z
  .object({
    worker: workerSpecSchema,
    /** The worker promises to refresh its entry within this many milliseconds. */
    leaseTtlMs: z.number().int().positive(),
  })
  .strict();

/** A decoded registry entry. */
export interface Registration {
  worker: WorkerInfo;
  leaseTtlMs: number;
}

/** JSON bytes of a registry entry. Model-card files must already be object-store references. */
export function encodeRegistration(registration: Registration): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({ worker: workerToSpec(registration.worker), leaseTtlMs: registration.leaseTtlMs }),
  );
}

/** Decodes a registry entry; returns an error message instead of throwing on bad input. */
export function decodeRegistration(bytes: Uint8Array): Registration | { error: string } {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    return { error: `not JSON: ${(error as Error).message}` };
  }
  const parsed = registrationSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { error: `${issue.path.join(".") || "entry"}: ${issue.message}` };
  }
  return { worker: workerFromSpec(parsed.data.worker), leaseTtlMs: parsed.data.leaseTtlMs };
}
