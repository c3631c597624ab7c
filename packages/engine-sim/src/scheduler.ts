import type { KvCache } from "./kv-cache.js";
import type { LoraSlots } from "./lora.js";
import type { Sequence } from "./sequence.js";
import { kvTransferMs } from "./timing.js";
import type { EngineConfig, TimeMs } from "./types.js";

/** What one scheduling step computes. */
export interface StepPlan {
  /** Scheduled sequences and the tokens each computes (`numNew[i]` for `seqs[i]`). */
  readonly seqs: Sequence[];
  readonly numNew: number[];
  /** Prompt tokens computed, over the sequences still prefilling. */
  prefillTokens: number;
  /** Some sequence computes a decode token. */
  decoding: boolean;
  /** Adapters loaded for the step. */
  loraLoads: number;
  /** `receive` sequences that got their blocks in this step; their KV arrives at `kvReadyAt`. */
  readonly transfers: Sequence[];
  /** Adapters of the scheduled sequences (null: none). */
  loras: Set<string> | null;
  /** A running request lost its blocks while planning (admission was then skipped). */
  preempted: boolean;
  /** Identical steps run as one event (the plan repeats; see `repeatableSteps`). */
  steps: number;
  /** Duration of one step. */
  stepMs: number;
  /** Start of the first step not yet delivered. */
  startAt: TimeMs;
}

/** Counters the scheduler updates. */
export interface SchedulerCounters {
  preemptions: number;
  prefixCacheQueries: number;
  prefixCacheHits: number;
  promptTokens: number;
}

/**
 * vLLM's scheduler (v1, `max_num_batched_tokens` budget per step): running requests first, in order,
 * each taking its decode token or its next prefill chunk; a request that cannot get a block preempts
 * the newest (`lifo`) or oldest (`fifo`) running request, possibly itself. Then, if nobody was
 * preempted, waiting requests are admitted in priority-then-arrival order while the budget, the
 * `max_num_seqs` cap, the step's LoRA slots and the KV capacity (minus the watermark) allow, the first
 * one that does not fit stopping admission; requests whose transferred KV has arrived (they hold their
 * blocks already) start before any other.
 */
export class Scheduler {
  readonly waiting: Sequence[] = [];
  running: Sequence[] = [];
  /** Waiting sequences holding blocks for a transferred prompt. */
  private holdingBlocks = 0;
  private readonly reserve: number;
  /** The plan of the step in flight; reused from step to step (a step is planned only after the previous one ended). */
  private readonly plan: StepPlan = {
    seqs: [],
    numNew: [],
    prefillTokens: 0,
    decoding: false,
    loraLoads: 0,
    transfers: [],
    loras: null,
    preempted: false,
    steps: 1,
    stepMs: 0,
    startAt: 0,
  };

  constructor(
    private readonly config: EngineConfig,
    private readonly kv: KvCache,
    private readonly loras: LoraSlots,
    private readonly counters: SchedulerCounters,
  ) {
    this.reserve = Math.floor(config.watermark * config.numGpuBlocks);
  }

  /** Queues a sequence after those of the same or a higher priority (`front`: before those of the same priority). */
  enqueue(seq: Sequence, front = false): void {
    seq.status = "waiting";
    const q = this.waiting;
    let at = q.length;
    if (front) {
      at = 0;
      while (at < q.length && q[at]!.priority < seq.priority) at++;
    } else {
      while (at > 0 && q[at - 1]!.priority > seq.priority) at--;
    }
    if (at === q.length) q.push(seq);
    else if (at === 0) q.unshift(seq);
    else q.splice(at, 0, seq);
  }

  /** Takes an unfinished sequence out of the queues (it was cancelled). */
  remove(seq: Sequence): void {
    if (seq.status === "running") {
      this.running.splice(this.running.indexOf(seq), 1);
      return;
    }
    this.waiting.splice(this.waiting.indexOf(seq), 1);
    if (seq.kvAllocated) {
      seq.kvAllocated = false;
      this.holdingBlocks--;
    }
  }

  /** Plans one step at `now`, allocating and caching blocks as it goes. */
  schedule(now: TimeMs): StepPlan {
    const plan = this.plan;
    plan.seqs.length = 0;
    plan.numNew.length = 0;
    plan.transfers.length = 0;
    plan.prefillTokens = 0;
    plan.decoding = false;
    plan.loraLoads = 0;
    plan.loras = null;
    plan.steps = 1;
    let budget = this.config.maxNumBatchedTokens;
    let preempted = false;
    const running = this.running;
    const lifo = this.config.preemptionMode === "lifo";
    let i = 0;
    while (i < running.length && budget > 0) {
      const seq = running[i]!;
      const numNew = Math.min(seq.numTokens - seq.numComputed, budget);
      let self = false;
      while (!this.kv.grow(seq, seq.numComputed + numNew)) {
        const victimAt = lifo ? running.length - 1 : 0;
        const victim = running[victimAt]!;
        budget += this.unschedule(plan, victim);
        this.preempt(victim, victimAt);
        preempted = true;
        if (victim === seq) {
          self = true;
          break;
        }
        if (victimAt < i) i--;
      }
      if (self) continue;
      this.kv.commit(seq, seq.numComputed + numNew);
      this.add(plan, seq, numNew);
      budget -= numNew;
      i++;
    }
    plan.preempted = preempted;
    if (!preempted) this.admit(now, plan, budget);
    if (plan.loras !== null) plan.loraLoads = this.loras.activate(plan.loras);
    return plan;
  }

  private admit(now: TimeMs, plan: StepPlan, budget: number): void {
    const { maxNumSeqs, enableChunkedPrefill, blockSize } = this.config;
    const waiting = this.waiting;
    // Requests whose transferred KV has arrived go first: they hold their blocks already, and starting
    // them is what gives those blocks back (a request recomputed in front of them could starve forever).
    for (let j = 0; this.holdingBlocks > 0 && j < waiting.length; j++) {
      const seq = waiting[j]!;
      if (!seq.kvAllocated || seq.kvReadyAt > now) continue;
      if (this.running.length >= maxNumSeqs || budget <= 0) return;
      if (!this.loraFits(plan, seq)) continue;
      seq.kvAllocated = false;
      this.holdingBlocks--;
      waiting.splice(j--, 1);
      budget -= this.start(plan, seq, seq.numTokens - seq.numComputed); // the prompt's last token
    }
    let j = 0;
    while (j < waiting.length && this.running.length < maxNumSeqs) {
      const seq = waiting[j]!;
      if (seq.kvAllocated || !this.loraFits(plan, seq)) {
        j++; // its KV is still on the way, or the step already uses as many adapters as it may
        continue;
      }
      if (seq.role === "receive" && seq.kvReadyAt === Infinity) {
        if (!this.allocateTransfer(seq, now, plan)) break;
        j++;
        continue;
      }
      if (budget <= 0) break;
      const hits = this.kv.cachedPrefix(seq);
      let numNew = seq.numTokens - hits.length * blockSize;
      if (!enableChunkedPrefill && numNew > budget) break;
      numNew = Math.min(numNew, budget);
      if (!this.kv.admit(seq, hits, hits.length * blockSize + numNew, this.reserve)) break;
      seq.numComputed = hits.length * blockSize;
      this.firstScheduled(seq, now, seq.numComputed);
      waiting.splice(j, 1);
      budget -= this.start(plan, seq, numNew);
    }
  }

  /** The step may take the sequence's adapter (it has it already, or a free adapter slot). */
  private loraFits(plan: StepPlan, seq: Sequence): boolean {
    const lora = seq.loraName;
    return lora === null || plan.loras === null || plan.loras.has(lora) || plan.loras.size < this.config.maxLoras;
  }

  /** Moves an admitted sequence to the running queue and into the plan; returns the budget it takes. */
  private start(plan: StepPlan, seq: Sequence, numNew: number): number {
    seq.status = "running";
    this.running.push(seq);
    this.kv.commit(seq, seq.numComputed + numNew);
    this.add(plan, seq, numNew);
    return numNew;
  }

  /** `receive`: blocks for the whole prompt now (announced as cached), the KV after the transfer delay. */
  private allocateTransfer(seq: Sequence, now: TimeMs, plan: StepPlan): boolean {
    const hits = this.kv.cachedPrefix(seq);
    if (!this.kv.admit(seq, hits, seq.promptLen, this.reserve)) return false;
    this.firstScheduled(seq, now, hits.length * this.config.blockSize);
    this.kv.commit(seq, seq.promptLen);
    seq.numComputed = seq.promptLen - 1;
    seq.prefillDone = true;
    seq.kvAllocated = true;
    this.holdingBlocks++;
    seq.status = "transferring";
    const c = this.config;
    seq.kvReadyAt = now + kvTransferMs(seq.promptLen, c.kvBytesPerToken, c.kvTransferBandwidth, c.speedupRatio);
    plan.transfers.push(seq);
    return true;
  }

  private firstScheduled(seq: Sequence, now: TimeMs, cached: number): void {
    if (seq.cachedTokens >= 0) return;
    seq.cachedTokens = cached;
    seq.scheduledMs = now;
    this.counters.prefixCacheQueries += seq.promptLen;
    this.counters.prefixCacheHits += cached;
    this.counters.promptTokens += seq.promptLen;
  }

  private add(plan: StepPlan, seq: Sequence, numNew: number): void {
    plan.seqs.push(seq);
    plan.numNew.push(numNew);
    if (seq.loraName !== null) (plan.loras ??= new Set()).add(seq.loraName);
    if (seq.prefillDone) plan.decoding = true;
    else plan.prefillTokens += numNew;
  }

  /** Takes a preempted sequence out of the plan; returns the budget it had taken. */
  private unschedule(plan: StepPlan, seq: Sequence): number {
    const at = plan.seqs.indexOf(seq);
    if (at < 0) return 0;
    const numNew = plan.numNew[at]!;
    plan.seqs.splice(at, 1);
    plan.numNew.splice(at, 1);
    if (seq.prefillDone) plan.decoding = plan.seqs.some((s) => s.prefillDone);
    else plan.prefillTokens -= numNew;
    if (seq.loraName !== null) {
      plan.loras = null;
      for (const s of plan.seqs) if (s.loraName !== null) (plan.loras ??= new Set()).add(s.loraName);
    }
    return numNew;
  }

  /** Gives the sequence's blocks back and queues it for recomputation (prompt and tokens generated so far). */
  private preempt(seq: Sequence, at: number): void {
    this.running.splice(at, 1);
    this.kv.free(seq);
    seq.numComputed = 0;
    seq.prefillDone = false;
    seq.preemptions++;
    this.counters.preemptions++;
    this.enqueue(seq, true);
  }
}
