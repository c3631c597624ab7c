/**
 * Dynamo's worker cost function (current form, with the classic form for comparison). Pure: every
 * input is a number supplied by the caller; lower cost is better.
 */

/** Knobs of the cost function; `DEFAULT_COST_PARAMS` holds Dynamo's defaults. */
export interface CostParams {
  /** Credit per device-tier overlap block (`overlap_score_credit`), finite and ≥ 0. */
  readonly overlapScoreCredit: number;
  /** Shrinks the credit on ranks with more prompt backlog than the least loaded one (0 = off). */
  readonly overlapScoreCreditDecay: number;
  /** Multiplier on the adjusted prefill blocks (`prefill_load_scale`). */
  readonly prefillLoadScale: number;
  /** Credit per host-tier (CPU pinned memory) block beyond the device prefix. */
  readonly hostCacheHitWeight: number;
  /** Credit per disk-tier block beyond the device and host prefixes. */
  readonly diskCacheHitWeight: number;
  /** Cost added per active request on the rank. */
  readonly decodeActiveRequestWeight: number;
}

export const DEFAULT_COST_PARAMS: CostParams = Object.freeze({
  overlapScoreCredit: 1.0,
  overlapScoreCreditDecay: 0.0,
  prefillLoadScale: 1.0,
  hostCacheHitWeight: 0.75,
  diskCacheHitWeight: 0.25,
  decodeActiveRequestWeight: 0.0,
});

/** What the cost function needs to know about one candidate rank. */
export interface CostInputs {
  /** Prefix depth (blocks) cached on the rank's device tier. */
  readonly deviceOverlapBlocks: number;
  /** Blocks continuing that prefix on the host tier (0 when none). */
  readonly hostOverlapBlocks: number;
  /** Blocks continuing the device+host prefix on the disk tier (0 when none). */
  readonly diskOverlapBlocks: number;
  /** Prompt tokens of requests still in prefill on the rank; null when the rank has no load entry. */
  readonly activePrefillTokens: number | null;
  /** Blocks held by the rank's active requests (shared blocks counted once). */
  readonly activeBlocks: number;
  /** Blocks of this request not already active on the rank. */
  readonly newBlocks: number;
  readonly activeRequests: number;
}

/** Request-level inputs, shared by every candidate of one decision. */
export interface CostRequest {
  /** Prompt length in tokens. */
  readonly isl: number;
  readonly blockSize: number;
  /** False: no prompt-side term (raw prefill = 0); the overlap credit offsets decode blocks instead. */
  readonly trackPrefillTokens: boolean;
  /** Least `activePrefillTokens` over the eligible candidates (for the credit decay). */
  readonly minActivePrefillTokens: number;
}

export interface CostBreakdown {
  /** (active prefill tokens + isl) / block size, before credit. */
  readonly rawPrefillBlocks: number;
  /** Total credit from device, host and disk overlap. */
  readonly overlapCredit: number;
  /** max(0, raw − credit): the prompt work the rank would still have to do, in blocks. */
  readonly prefillBlocks: number;
  /** activeBlocks + newBlocks. */
  readonly decodeBlocks: number;
  readonly cost: number;
}

/** Cost of routing the request to one candidate: the current (2026) form, see docs/architecture.md. */
export function computeCost(request: CostRequest, c: CostInputs, params: CostParams): CostBreakdown {
  const out = { rawPrefillBlocks: 0, overlapCredit: 0, prefillBlocks: 0, decodeBlocks: 0, cost: 0 };
  costInto(out, request, c, params);
  return out;
}

/**
 * `computeCost` writing its breakdown into `out` (reused by callers scoring many candidates, so that
 * scoring allocates nothing per candidate); returns the cost.
 */
export function costInto(
  out: { -readonly [K in keyof CostBreakdown]: number },
  request: CostRequest,
  c: CostInputs,
  params: CostParams,
): number {
  const bs = request.blockSize;
  const activePrefill = c.activePrefillTokens ?? 0;
  const rawPrefillTokens = request.trackPrefillTokens ? activePrefill + request.isl : 0;
  const rawPrefillBlocks = rawPrefillTokens / bs;
  let creditDecay = 1;
  if (params.overlapScoreCreditDecay > 0) {
    const requestBlocks = Math.ceil(request.isl / bs);
    const excess = requestBlocks > 0 ? (activePrefill - request.minActivePrefillTokens) / bs / requestBlocks : 0;
    creditDecay = 1 / (1 + params.overlapScoreCreditDecay * Math.max(0, excess));
  }
  const overlapCredit =
    params.overlapScoreCredit * creditDecay * c.deviceOverlapBlocks +
    params.hostCacheHitWeight * c.hostOverlapBlocks +
    params.diskCacheHitWeight * c.diskOverlapBlocks;
  const prefillBlocks = Math.max(0, rawPrefillBlocks - overlapCredit);
  const decodeBlocks = c.activeBlocks + c.newBlocks;
  const requestCost = params.decodeActiveRequestWeight * c.activeRequests;
  // Without prompt-side tracking there is no prefill term to credit; with a device credit on, the
  // overlap credit then offsets the decode blocks instead (Dynamo's decode-only router case). With the
  // credit off (the decode side of a disaggregated request) host and disk hits earn nothing either.
  const decodeOnly = !request.trackPrefillTokens && params.overlapScoreCredit > 0;
  const cost = decodeOnly
    ? Math.max(0, decodeBlocks - overlapCredit) + requestCost
    : params.prefillLoadScale * prefillBlocks + decodeBlocks + requestCost;
  out.rawPrefillBlocks = rawPrefillBlocks;
  out.overlapCredit = overlapCredit;
  out.prefillBlocks = prefillBlocks;
  out.decodeBlocks = decodeBlocks;
  out.cost = cost;
  return cost;
}

/**
 * The 2025 form: `weight · (active prefill + uncached prompt tokens) / bs + decode blocks`.
 * Kept as the reference the current form must equal under default parameters.
 */
export function classicCost(
  request: Pick<CostRequest, "isl" | "blockSize">,
  c: CostInputs,
  overlapScoreWeight: number,
): number {
  const newTokens = Math.max(0, request.isl - c.deviceOverlapBlocks * request.blockSize);
  const prefillTokens = c.activePrefillTokens === null ? request.isl : c.activePrefillTokens + newTokens;
  return overlapScoreWeight * (prefillTokens / request.blockSize) + c.activeBlocks + c.newBlocks;
}
