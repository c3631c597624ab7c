import { selectByCost } from "./selection.js";
import type { Picker, PolicyChoice, PolicyRequest, PolicyState, ScoredCandidate } from "./types.js";

/** The pickers this package ships; `registry.ts` names them. */

/** Dynamo's KV picker: minimum cost with random tie-break, or softmax sampling when temperature > 0. */
export class KvCostPicker implements Picker {
  readonly name = "kv";

  choose(request: PolicyRequest, candidates: readonly ScoredCandidate[], state: PolicyState): PolicyChoice {
    return this.chooseByCost(
      request,
      candidates.map((c) => c.cost),
      state,
    );
  }

  chooseByCost(request: PolicyRequest, costs: ArrayLike<number>, state: PolicyState): PolicyChoice {
    const s = selectByCost(costs, request.temperature, state.rng, request.tieBand ?? 0);
    const cost = +costs[s.index]!.toFixed(3);
    if (s.probability !== undefined) {
      return {
        index: s.index,
        reason: `softmax sample at temperature ${request.temperature}: cost ${cost}, p=${s.probability.toFixed(4)}`,
      };
    }
    return {
      index: s.index,
      reason:
        s.ties > 1
          ? `${request.tieBand ? `within ${+request.tieBand.toFixed(3)} of the lowest cost` : "lowest cost"} ${cost}, tied with ${s.ties - 1} other(s), picked at random`
          : `lowest cost ${cost}`,
    };
  }
}

/** Strict rotation over the candidates in registration order. */
export class RoundRobinPicker implements Picker {
  readonly name = "round-robin";
  private cursor = 0;

  choose(_request: PolicyRequest, candidates: readonly ScoredCandidate[]): PolicyChoice {
    return this.next(candidates.length);
  }

  chooseByCost(_request: PolicyRequest, costs: ArrayLike<number>): PolicyChoice {
    return this.next(costs.length);
  }

  private next(count: number): PolicyChoice {
    const index = this.cursor % count;
    this.cursor = (this.cursor + 1) % Number.MAX_SAFE_INTEGER;
    return { index, reason: "round robin" };
  }
}

/** Uniform choice among the candidates. */
export class RandomPicker implements Picker {
  readonly name = "random";

  choose(_request: PolicyRequest, candidates: readonly ScoredCandidate[], state: PolicyState): PolicyChoice {
    return this.pick(candidates.length, state);
  }

  chooseByCost(_request: PolicyRequest, costs: ArrayLike<number>, state: PolicyState): PolicyChoice {
    return this.pick(costs.length, state);
  }

  private pick(count: number, state: PolicyState): PolicyChoice {
    return { index: Math.min(count - 1, Math.floor(state.rng() * count)), reason: "uniform random" };
  }
}

/** Orders two candidates by in-flight load: fewer active requests first, then fewer active blocks. */
function lighter(a: ScoredCandidate, b: ScoredCandidate): number {
  return a.load.activeRequests - b.load.activeRequests || a.load.activeBlocks - b.load.activeBlocks;
}

/** The least loaded candidate (fewest active requests, then fewest active blocks), ties broken at random. */
export class LeastLoadedPicker implements Picker {
  readonly name = "least-loaded";

  choose(_request: PolicyRequest, candidates: readonly ScoredCandidate[], state: PolicyState): PolicyChoice {
    let best = 0;
    let ties = 1;
    for (let i = 1; i < candidates.length; i++) {
      const order = lighter(candidates[i]!, candidates[best]!);
      if (order < 0) {
        best = i;
        ties = 1;
      } else if (order === 0 && state.rng() * ++ties < 1) {
        best = i; // reservoir sampling: the k-th tie replaces the incumbent with probability 1/k
      }
    }
    const load = candidates[best]!.load;
    return {
      index: best,
      reason: `least loaded: ${load.activeRequests} active requests, ${load.activeBlocks} active blocks`,
    };
  }
}

/** Power of two choices: two distinct candidates drawn at random, the less loaded one taken. */
export class PowerOfTwoPicker implements Picker {
  readonly name = "power-of-two";

  choose(_request: PolicyRequest, candidates: readonly ScoredCandidate[], state: PolicyState): PolicyChoice {
    const n = candidates.length;
    if (n === 1) return { index: 0, reason: "only candidate" };
    const first = Math.min(n - 1, Math.floor(state.rng() * n));
    const second = (first + 1 + Math.min(n - 2, Math.floor(state.rng() * (n - 1)))) % n;
    const order = lighter(candidates[first]!, candidates[second]!);
    const index = order < 0 || (order === 0 && first < second) ? first : second;
    return {
      index,
      reason: `less loaded of two random candidates (${candidates[index]!.load.activeRequests} active requests)`,
    };
  }
}
