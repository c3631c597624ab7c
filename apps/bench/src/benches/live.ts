import type { Bench } from "../framework.js";
import { runLive } from "../live/compare.js";
import { liveOptions } from "../live/options.js";
import { comparisonLines, comparisonResult } from "../live/present.js";
import { replicaLines, replicaResult } from "../live/replicas-present.js";
import { runReplicas } from "../live/replicas.js";
import { simulateSlice } from "../live/simulated.js";

export const bench: Bench = {
  name: "live",
  description:
    "The live end-to-end comparison: real processes on loopback (the mocker's simulated vLLM workers publishing KV events over ZeroMQ, a frontend sidecar per worker, the endpoint picker over static discovery, the dev gateway), a slice of the Mooncake conversation trace replayed through the gateway with the `openai` client at a fixed rate, once with the picker in KV mode and once with `DYN_ROUTER_MODE=round-robin`, fresh processes (cold caches) for each. Options: `--workers 4 --conversations 6 --rate 2 --speedup-ratio 10 --max-output-tokens 96 --event-plane zmq|nats --block-size 64 --gpu-blocks 16384 --trace <file>`. With `--epp-replicas N` (N > 1) it compares instead one endpoint picker with N replicas sharing their bookings over NATS (`DYN_ROUTER_REPLICA_SYNC=true`), the gateway spreading streams over them, then kills one replica mid-run (`--kill-replica-at 0.5`, or `off`).",
  async run(ctx) {
    const options = liveOptions(ctx.args, ctx.root, ctx.progress);
    if ((options.eppReplicas ?? 1) > 1) {
      const replicas = await runReplicas(options);
      if (!ctx.json) for (const line of replicaLines(replicas)) console.log(line);
      return replicaResult(replicas, options);
    }
    const comparison = await runLive(options, simulateSlice);
    if (!ctx.json) for (const line of comparisonLines(comparison)) console.log(line);
    return comparisonResult(comparison, options);
  },
};
