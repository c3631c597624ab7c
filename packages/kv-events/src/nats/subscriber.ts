import { TieredIndex, workerRankKey, type RouterEvent, type WorkerRankKey } from "@dynamo/kv-indexer";
import { setTimeout as sleep } from "node:timers/promises";
import type { ConsumerMessages } from "@nats-io/jetstream";
import type { NatsConnection, Status, Subscription } from "@nats-io/transport-node";
import { admission, eventsToApply, judgeAnswer } from "./gap-recovery.js";
import { consumeKvEventStream } from "./jetstream.js";
import { RouterEventDecodeError, decodeRouterEventJson } from "./json-codec.js";
import { RateLimitedLog, type LogSink } from "../log.js";
import { ConcurrencyLimit, queryEventRange } from "./range-client.js";
import type { RangeAnswer } from "./range-protocol.js";
import { kvEventSubject, workerQuerySubject } from "./subjects.js";

/** How gaps are recovered (Dynamo's constants by default). */
export interface RecoveryPolicy {
  /** Attempts after the first one. Default 8. */
  readonly maxRetries: number;
  /** Backoff before the first retry, doubled for each next one. Default 200 ms. */
  readonly initialBackoffMs: number;
  /** Recoveries running at once. Default 16. */
  readonly maxConcurrent: number;
  /** Time limit of one attempt. Default 30 s. */
  readonly attemptTimeoutMs: number;
  /** Live events held per rank while it recovers; beyond that the recovery is abandoned. Default 100 000. */
  readonly maxHeldEvents: number;
}

export const DEFAULT_RECOVERY_POLICY: RecoveryPolicy = {
  maxRetries: 8,
  initialBackoffMs: 200,
  maxConcurrent: 16,
  attemptTimeoutMs: 30_000,
  maxHeldEvents: 100_000,
};

export interface KvEventSubscriberOptions {
  readonly nc: NatsConnection;
  readonly namespace: string;
  readonly component: string;
  readonly recovery?: Partial<RecoveryPolicy>;
  /**
   * The index the events land in (a router's `index`; several subscribers may share one). Default: a new
   * one, read through `subscriber.index`.
   */
  readonly index?: TieredIndex;
  readonly log?: LogSink;
  /**
   * Durable mode: read the component's JetStream stream through this router instance's durable
   * consumer instead of a plain subscription, so a replica that joins late replays the kept events.
   */
  readonly durableConsumer?: string;
}

export interface KvEventSubscriberStats {
  /** Router events received (live, including held ones). */
  received: number;
  /** Messages that were not router events. */
  malformed: number;
  /** Event-id gaps detected. */
  gaps: number;
  /** Recoveries answered from a bridge's buffer. */
  recoveredFromEvents: number;
  /** Recoveries (and syncs) that replaced a rank's state with a dump. */
  recoveredFromDump: number;
  /** Recoveries abandoned after every retry (the rank was cleared and re-warms). */
  recoveryFailures: number;
  /** Events of workers removed by `removeWorker`, dropped. */
  droppedFromRemovedWorkers: number;
  /** Reconnections of the NATS connection seen. */
  reconnects: number;
  /** Queries for the events after a rank's last id, sent because of a reconnection. */
  reconnectCatchUps: number;
}

interface RankState {
  readonly workerId: bigint;
  readonly dpRank: number;
  /** A recovery runs: live events wait in `held`. */
  recovering: boolean;
  /** Bumped to abandon a running recovery (removal, clear barrier). */
  generation: number;
  held: RouterEvent[];
  /** The connection came back while a recovery ran: ask for the events after the last id once it ends. */
  catchUpPending: boolean;
}

/**
 * The router side of the NATS event plane: applies router events to a `TieredIndex` (the router's own,
 * when given) and recovers event-id gaps by range queries to the worker rank's bridge.
 *
 * A gap is detected before the event that reveals it is applied (against `index.lastEventId`): that
 * event and the ones after it are held until the missing range is applied, because a store whose
 * parent is in the gap would otherwise be skipped. When the bridge's buffer no longer holds the range,
 * its dump replaces the rank's state. A `cleared` event is a barrier: it abandons the rank's recovery.
 * When the NATS connection comes back after an outage, every known rank is asked for the events after
 * its last id, so that losses are recovered even if the worker stays quiet afterwards.
 */
export class KvEventSubscriber {
  readonly stats: KvEventSubscriberStats = {
    received: 0,
    malformed: 0,
    gaps: 0,
    recoveredFromEvents: 0,
    recoveredFromDump: 0,
    recoveryFailures: 0,
    droppedFromRemovedWorkers: 0,
    reconnects: 0,
    reconnectCatchUps: 0,
  };
  /** The index events are applied to, one `RadixIndex` per storage tier. */
  readonly index: TieredIndex;
  private readonly ranks = new Map<WorkerRankKey, RankState>();
  private readonly removed = new Set<bigint>();
  private readonly policy: RecoveryPolicy;
  private readonly limit: ConcurrencyLimit;
  private readonly log: RateLimitedLog;
  private subscription: Subscription | ConsumerMessages | undefined;
  private statusWatch: AsyncIterable<Status> | undefined;
  private readonly idle = new Set<Promise<void>>();
  /** Aborted by `close()`: ends recovery backoffs at once. */
  private readonly closing = new AbortController();

  constructor(private readonly options: KvEventSubscriberOptions) {
    this.policy = { ...DEFAULT_RECOVERY_POLICY, ...options.recovery };
    this.limit = new ConcurrencyLimit(this.policy.maxConcurrent);
    this.log = new RateLimitedLog(options.log);
    this.index = options.index ?? new TieredIndex();
  }

  /** Subscribes to the component's event subject. */
  static async start(options: KvEventSubscriberOptions): Promise<KvEventSubscriber> {
    const subscriber = new KvEventSubscriber(options);
    const { nc, namespace, component, durableConsumer } = options;
    const receive = (text: string) => subscriber.receive(text);
    if (durableConsumer === undefined) {
      subscriber.subscription = nc.subscribe(kvEventSubject(namespace, component), {
        callback: (_err, msg) => receive(msg.string()),
      });
      await nc.flush();
    } else {
      subscriber.subscription = await consumeKvEventStream(nc, namespace, component, durableConsumer, receive);
    }
    subscriber.watchReconnects(nc);
    return subscriber;
  }

  private watchReconnects(nc: NatsConnection): void {
    const status = nc.status();
    this.statusWatch = status;
    void (async () => {
      for await (const s of status)
        if (s.type === "reconnect" && !this.closing.signal.aborted) this.catchUpAfterReconnect();
    })().catch((err: unknown) =>
      this.log.warn("status", `kv-events subscriber: connection status watch failed: ${(err as Error).message}`),
    );
  }

  /**
   * The connection came back: events published meanwhile never reached the subscription, and a worker
   * that goes quiet would never reveal the gap. Ask every known rank for the events after its last id
   * (answered with those events, `too_new` when nothing is missing, or the bridge's dump).
   */
  private catchUpAfterReconnect(): void {
    this.stats.reconnects++;
    for (const state of this.ranks.values()) {
      if (state.recovering) state.catchUpPending = true;
      else this.catchUp(state);
    }
  }

  private catchUp(state: RankState): void {
    state.catchUpPending = false;
    this.stats.reconnectCatchUps++;
    const last = this.index.lastEventId(state.workerId, state.dpRank);
    void this.recover(state, last === undefined ? null : last + 1n, null);
  }

  /** Runs the catch-up a reconnection asked for while the rank was recovering. */
  private catchUpIfPending(state: RankState): void {
    if (
      state.catchUpPending &&
      !state.recovering &&
      this.ranks.get(workerRankKey(state.workerId, state.dpRank)) === state
    )
      this.catchUp(state);
  }

  /** Decodes and handles one message of the event subject (JSON router event). */
  receive(text: string): void {
    let event: RouterEvent;
    try {
      event = decodeRouterEventJson(text);
    } catch (err) {
      if (!(err instanceof RouterEventDecodeError)) throw err;
      this.stats.malformed++;
      this.log.warn("malformed", `kv-events subscriber: dropped a malformed router event: ${err.message}`);
      return;
    }
    this.handle(event);
  }

  /** Handles one router event (from NATS, JetStream or a test). */
  handle(event: RouterEvent): void {
    this.stats.received++;
    this.dispatch(event);
  }

  private dispatch(event: RouterEvent): void {
    if (this.removed.has(event.workerId)) {
      this.stats.droppedFromRemovedWorkers++;
      return;
    }
    const state = this.rankState(event.workerId, event.dpRank);
    if (!state.recovering) {
      this.admit(state, event);
    } else if (event.data.type === "cleared") {
      this.abandonRecovery(state);
      this.restartAt(state, event);
      this.catchUpIfPending(state);
    } else if (state.held.length >= this.policy.maxHeldEvents) {
      this.log.warn(
        "held",
        `kv-events subscriber: worker ${state.workerId} dp_rank ${state.dpRank}: recovery too slow, clearing the rank`,
      );
      this.abandonRecovery(state);
      this.stats.recoveryFailures++;
      this.restartAt(state, event);
      this.catchUpIfPending(state);
    } else {
      state.held.push(event);
    }
  }

  /** Replaces a (newly discovered) worker rank's state with its bridge's dump. */
  syncWorker(workerId: bigint, dpRank: number): Promise<void> {
    this.removed.delete(workerId);
    const state = this.rankState(workerId, dpRank);
    this.abandonRecovery(state);
    return this.recover(state, null, null);
  }

  /** Forgets a worker (every rank): its blocks, recoveries, and any of its events still in flight. */
  removeWorker(workerId: bigint): void {
    this.removed.add(workerId);
    for (const [key, state] of this.ranks) {
      if (state.workerId !== workerId) continue;
      this.abandonRecovery(state);
      this.ranks.delete(key);
    }
    this.index.removeWorker(workerId);
  }

  /** Resolves once no recovery is running. */
  async settled(): Promise<void> {
    while (this.idle.size > 0) await Promise.all(this.idle);
  }

  /** Worker ranks currently recovering. */
  get recovering(): number {
    let n = 0;
    for (const s of this.ranks.values()) if (s.recovering) n++;
    return n;
  }

  async close(): Promise<void> {
    const subscription = this.subscription;
    if (subscription && "unsubscribe" in subscription) subscription.unsubscribe();
    else await subscription?.close();
    (this.statusWatch as { stop?: () => void } | undefined)?.stop?.();
    for (const state of this.ranks.values()) this.abandonRecovery(state);
    this.closing.abort();
    await this.settled();
  }

  private rankState(workerId: bigint, dpRank: number): RankState {
    const key = workerRankKey(workerId, dpRank);
    let state = this.ranks.get(key);
    if (!state)
      this.ranks.set(
        key,
        (state = { workerId, dpRank, recovering: false, generation: 0, held: [], catchUpPending: false }),
      );
    return state;
  }

  private admit(state: RankState, event: RouterEvent): void {
    const next = admission(event, this.index.lastEventId(state.workerId, state.dpRank));
    if (next.kind === "apply") this.apply(event);
    else if (next.kind === "restart") this.restartAt(state, event);
    else {
      this.stats.gaps++;
      state.held.push(event);
      void this.recover(state, next.from, next.to);
    }
  }

  private apply(event: RouterEvent): void {
    this.index.apply(event);
  }

  /** Nothing before `event` matters any more (a clear, or the rank gave up recovering): continue from it. */
  private restartAt(state: RankState, event: RouterEvent): void {
    this.clearRank(state);
    this.index.resetEventIds(state.workerId, state.dpRank, event.eventId);
    this.apply(event);
  }

  private clearRank(state: RankState): void {
    this.index.clearWorkerRank(state.workerId, state.dpRank);
  }

  private abandonRecovery(state: RankState): void {
    state.generation++;
    state.recovering = false;
    state.held = [];
  }

  /**
   * Fetches `[from, to]` (`to` null: up to the newest; `from` null: the whole state) and applies it, then
   * the held events.
   */
  private recover(state: RankState, from: bigint | null, to: bigint | null): Promise<void> {
    state.recovering = true;
    const generation = state.generation;
    const run = this.limit
      .run(() => this.recoverWithRetries(state, generation, from, to))
      .catch((err: unknown) =>
        this.log.warn("recovery-bug", `kv-events subscriber: recovery crashed: ${(err as Error).stack ?? String(err)}`),
      );
    const tracked = run.finally(() => this.idle.delete(tracked));
    this.idle.add(tracked);
    return tracked;
  }

  private async recoverWithRetries(
    state: RankState,
    generation: number,
    from: bigint | null,
    to: bigint | null,
  ): Promise<void> {
    const subject = workerQuerySubject(this.options.namespace, this.options.component, state.workerId, state.dpRank);
    let start = from;
    for (let attempt = 0; attempt <= this.policy.maxRetries; attempt++) {
      if (attempt > 0) {
        try {
          await sleep(this.policy.initialBackoffMs * 2 ** (attempt - 1), undefined, { signal: this.closing.signal });
        } catch {
          return; // closed
        }
      }
      if (state.generation !== generation) return;
      let answer: RangeAnswer;
      try {
        answer = await queryEventRange(
          this.options.nc,
          subject,
          { startEventId: start, endEventId: to },
          this.policy.attemptTimeoutMs,
        );
      } catch (err) {
        this.log.warn(
          "recovery",
          `kv-events subscriber: worker ${state.workerId} dp_rank ${state.dpRank}: recovery attempt ${attempt + 1} failed: ${(err as Error).message}`,
        );
        continue;
      }
      if (state.generation !== generation) return;
      const verdict = judgeAnswer(answer, start, to);
      if (verdict === "replace_with_dump") {
        this.replaceWithDump(state, answer);
        this.stats.recoveredFromDump++;
        return this.finishRecovery(state);
      }
      if (verdict === "apply_events") {
        this.applyRange(state, answer.events, start!, to);
        this.stats.recoveredFromEvents++;
        return this.finishRecovery(state);
      }
      if (verdict === "nothing_missing") return this.finishRecovery(state);
      // Too new, or not the whole range: the bridge's history does not match ours (it restarted). Ask for its state.
      start = null;
    }
    if (state.generation !== generation) return;
    this.stats.recoveryFailures++;
    const held = state.held;
    state.held = [];
    state.recovering = false;
    const outcome = held.length > 0 ? "clearing the rank to re-warm" : "keeping the rank's state";
    this.log.warn(
      "recovery",
      `kv-events subscriber: worker ${state.workerId} dp_rank ${state.dpRank}: recovery failed, ${outcome}`,
    );
    if (held.length > 0) this.restartAt(state, held.shift()!);
    for (const event of held) this.dispatch(event);
    this.catchUpIfPending(state);
  }

  /**
   * Applies recovered events `[start, to]` (`to` null: all from `start`). An answer may start above
   * `start` with a `cleared` (the bridge's buffer begins with one): ids restart there, so that older ids
   * are not remembered as missing.
   */
  private applyRange(state: RankState, events: readonly RouterEvent[], start: bigint, to: bigint | null): void {
    const range = eventsToApply(events, start, to);
    if (range.restartAt !== undefined) this.index.resetEventIds(state.workerId, state.dpRank, range.restartAt);
    for (const event of range.events) this.apply(event);
  }

  private replaceWithDump(state: RankState, answer: RangeAnswer): void {
    const { workerId, dpRank } = state;
    this.clearRank(state);
    this.index.resetEventIds(workerId, dpRank);
    answer.events.forEach((event, i) => this.apply({ ...event, eventId: BigInt(i) }));
    this.index.resetEventIds(workerId, dpRank, answer.lastEventId === null ? undefined : answer.lastEventId + 1n);
    const last = answer.lastEventId;
    if (last !== null) state.held = state.held.filter((e) => e.eventId > last);
  }

  private finishRecovery(state: RankState): void {
    const held = state.held;
    state.held = [];
    state.recovering = false;
    for (const event of held) this.dispatch(event);
    this.catchUpIfPending(state);
  }
}
