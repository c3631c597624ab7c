import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";

/** A JSON object as the API server stores it. */
type KubeJson = {
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    resourceVersion?: string;
    uid?: string;
  };
} & Record<string, unknown>;
type Resource = "pods" | "inferencepools";

interface LogEntry {
  resourceVersion: number;
  resource: Resource;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: KubeJson;
  previous: KubeJson | undefined;
}

interface Watcher {
  resource: Resource;
  matches: (object: KubeJson) => boolean;
  response: ServerResponse;
}

/**
 * A small in-memory Kubernetes API server: list and watch (newline-delimited JSON events over a
 * chunked response) of pods and InferencePools in one namespace, with label and name selectors,
 * resourceVersions, bookmarks, server-side watch closing and history compaction (`410 Gone`, either
 * as an ERROR event or as the HTTP status).
 */
export class FakeKubeApi {
  readonly requests = { lists: { pods: 0, inferencepools: 0 }, watches: { pods: 0, inferencepools: 0 } };
  /** Label selectors of the pod watches, in order. */
  readonly podWatchSelectors: string[] = [];
  goneAs: "event" | "status" = "event";
  /** When set, every watch is answered with an empty stream that ends at once. */
  endWatchesAtOnce = false;
  /** When set, every request is answered `503 Service Unavailable` (counted in `refused`). */
  unavailable = false;
  refused = 0;
  private resourceVersion = 100;
  private compactedBelow = 0;
  private readonly objects: Record<Resource, Map<string, KubeJson>> = { pods: new Map(), inferencepools: new Map() };
  private readonly log: LogEntry[] = [];
  private readonly watchers = new Set<Watcher>();

  private constructor(
    private readonly server: Server,
    readonly namespace: string,
  ) {}

  /** Listens on `port` (0: a free one). */
  static async start(namespace = "dynamo", port = 0): Promise<FakeKubeApi> {
    const server = createServer();
    const api = new FakeKubeApi(server, namespace);
    server.on("request", (request: IncomingMessage, response: ServerResponse) => api.handle(request, response));
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** A KubeConfig pointing the real client at this server. */
  kubeConfig(): KubeConfig {
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: "fake", server: this.url, skipTLSVerify: true }],
      users: [{ name: "tester" }],
      contexts: [{ name: "fake", cluster: "fake", user: "tester", namespace: this.namespace }],
      currentContext: "fake",
    });
    return config;
  }

  async close(): Promise<void> {
    this.closeWatches();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  apply(resource: Resource, object: KubeJson): void {
    const previous = this.objects[resource].get(object.metadata.name);
    const stored: KubeJson = structuredClone(object);
    stored.metadata.namespace = this.namespace;
    stored.metadata.uid = previous?.metadata.uid ?? `uid-${object.metadata.name}-${this.resourceVersion}`;
    stored.metadata.resourceVersion = String(++this.resourceVersion);
    this.objects[resource].set(object.metadata.name, stored);
    this.record({
      resourceVersion: this.resourceVersion,
      resource,
      type: previous ? "MODIFIED" : "ADDED",
      object: stored,
      previous,
    });
  }

  remove(resource: Resource, name: string): void {
    const previous = this.objects[resource].get(name);
    if (!previous) return;
    this.objects[resource].delete(name);
    const object: KubeJson = structuredClone(previous);
    object.metadata.resourceVersion = String(++this.resourceVersion);
    this.record({ resourceVersion: this.resourceVersion, resource, type: "DELETED", object, previous });
  }

  /** Ends every open watch, as an API server does on timeout or restart. */
  closeWatches(): void {
    for (const watcher of this.watchers) watcher.response.end();
    this.watchers.clear();
  }

  /** Forgets history: watches from any older resourceVersion get `410 Gone`. */
  compact(): void {
    this.compactedBelow = this.resourceVersion;
  }

  /** Sends a BOOKMARK with the current resourceVersion to every open watch. */
  bookmark(): void {
    for (const watcher of this.watchers) {
      const object = { kind: "Pod", apiVersion: "v1", metadata: { resourceVersion: String(this.resourceVersion) } };
      watcher.response.write(`${JSON.stringify({ type: "BOOKMARK", object })}\n`);
    }
  }

  openWatches(): number {
    return this.watchers.size;
  }

  private record(entry: LogEntry): void {
    this.log.push(entry);
    for (const watcher of this.watchers) {
      if (watcher.resource === entry.resource) this.send(watcher, entry);
    }
  }

  /** The event a selector-filtered watch sees: objects entering the selection are ADDED, leaving it DELETED. */
  private send(watcher: Watcher, entry: LogEntry): void {
    const now = entry.type !== "DELETED" && watcher.matches(entry.object);
    const before = entry.previous !== undefined && watcher.matches(entry.previous);
    const type = now && before ? "MODIFIED" : now ? "ADDED" : before ? "DELETED" : undefined;
    if (type) watcher.response.write(`${JSON.stringify({ type, object: entry.object })}\n`);
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    if (this.unavailable) {
      this.refused++;
      const status = { kind: "Status", apiVersion: "v1", status: "Failure", reason: "ServiceUnavailable", code: 503 };
      response.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify(status));
      return;
    }
    const url = new URL(request.url ?? "/", "http://fake");
    const resource = this.resourceOf(url.pathname);
    if (!resource) {
      response
        .writeHead(404, { "content-type": "application/json" })
        .end(JSON.stringify({ kind: "Status", code: 404 }));
      return;
    }
    const matches = selectorMatcher(url.searchParams.get("labelSelector"), url.searchParams.get("fieldSelector"));
    if (url.searchParams.get("watch") !== "true") {
      this.requests.lists[resource]++;
      const items = [...this.objects[resource].values()].filter(matches);
      const kind = resource === "pods" ? "PodList" : "InferencePoolList";
      response.writeHead(200, { "content-type": "application/json" });
      response.end(
        JSON.stringify({ kind, apiVersion: "v1", metadata: { resourceVersion: String(this.resourceVersion) }, items }),
      );
      return;
    }
    this.requests.watches[resource]++;
    if (resource === "pods") this.podWatchSelectors.push(url.searchParams.get("labelSelector") ?? "");
    const from = Number(url.searchParams.get("resourceVersion") || this.resourceVersion);
    const gone = {
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      reason: "Expired",
      code: 410,
      message: "too old resource version",
    };
    if (from < this.compactedBelow) {
      if (this.goneAs === "status") {
        response.writeHead(410, { "content-type": "application/json" }).end(JSON.stringify(gone));
      } else {
        response.writeHead(200, { "content-type": "application/json" });
        response.end(`${JSON.stringify({ type: "ERROR", object: gone })}\n`);
      }
      return;
    }
    response.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    if (this.endWatchesAtOnce) {
      response.end();
      return;
    }
    response.flushHeaders();
    const watcher: Watcher = { resource, matches, response };
    for (const entry of this.log) {
      if (entry.resource === resource && entry.resourceVersion > from) this.send(watcher, entry);
    }
    this.watchers.add(watcher);
    request.on("close", () => this.watchers.delete(watcher));
  }

  private resourceOf(path: string): Resource | undefined {
    if (path === `/api/v1/namespaces/${this.namespace}/pods`) return "pods";
    if (path === `/apis/inference.networking.k8s.io/v1/namespaces/${this.namespace}/inferencepools`)
      return "inferencepools";
    return undefined;
  }
}

/** Equality (`k=v`, `k==v`), inequality (`k!=v`) and existence (`k`, `!k`) label terms; `metadata.name=` field terms. */
function selectorMatcher(labelSelector: string | null, fieldSelector: string | null): (object: KubeJson) => boolean {
  const terms = (labelSelector ?? "").split(",").filter(Boolean);
  const name = fieldSelector?.match(/^metadata\.name=(.+)$/)?.[1];
  return (object) => {
    if (name !== undefined && object.metadata.name !== name) return false;
    const labels = object.metadata.labels ?? {};
    return terms.every((term) => {
      const [key, value] = term.split(/!=|==|=/);
      if (term.includes("!=")) return labels[key!] !== value;
      if (term.includes("=")) return labels[key!] === value;
      return term.startsWith("!") ? !(term.slice(1) in labels) : key! in labels;
    });
  };
}

export interface PodSpec {
  ip?: string | null;
  ready?: boolean;
  labels?: Record<string, string>;
  /** Containers and their readiness; default one `main` container with an `http` port. */
  containers?: { name: string; ready: boolean; httpPort?: number }[];
  terminating?: boolean;
}

/** A Pod as the API server returns it. */
export function pod(name: string, spec: PodSpec = {}): KubeJson {
  const containers = spec.containers ?? [{ name: "main", ready: spec.ready ?? true, httpPort: 8000 }];
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      labels: spec.labels ?? {},
      ...(spec.terminating ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}),
    },
    spec: {
      containers: containers.map((c) => ({
        name: c.name,
        image: "engine",
        ports: c.httpPort === undefined ? [] : [{ name: "http", containerPort: c.httpPort, protocol: "TCP" }],
      })),
    },
    status: {
      phase: "Running",
      ...(spec.ip === null ? {} : { podIP: spec.ip ?? "10.0.0.1" }),
      conditions: [{ type: "Ready", status: (spec.ready ?? true) ? "True" : "False" }],
      containerStatuses: containers.map((c) => ({
        name: c.name,
        ready: c.ready,
        restartCount: 0,
        image: "engine",
        imageID: "",
        started: true,
      })),
    },
  };
}

/** An `inference.networking.k8s.io/v1` InferencePool. */
export function inferencePool(name: string, matchLabels: Record<string, string>, targetPorts: number[]): KubeJson {
  return {
    apiVersion: "inference.networking.k8s.io/v1",
    kind: "InferencePool",
    metadata: { name },
    spec: {
      selector: { matchLabels },
      targetPorts: targetPorts.map((number) => ({ number })),
      endpointPickerRef: { name: `${name}-epp`, port: { number: 9002 } },
    },
  };
}
