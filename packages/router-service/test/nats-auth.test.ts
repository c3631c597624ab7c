import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NatsWorkerRegistrar } from "@dynamo/discovery";
import { encodeAccount, encodeOperator, encodeUser, fmtCreds, type Account } from "@nats-io/jwt";
import { createAccount, createOperator, createUser } from "@nats-io/nkeys";
import { NatsServer, waitFor } from "@dynamo/testkit";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEFAULT_SERVICE_SETTINGS,
  NatsConnectError,
  RouterService,
  connectNats,
  type NatsSettings,
} from "../src/index.js";
import { BS, quiet } from "./support/cluster.js";

const dir = mkdtempSync(join(tmpdir(), "nats-auth-"));
const file = (name: string) => join(dir, name);
const servers: NatsServer[] = [];

beforeAll(() => {
  // A private CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it.
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
  openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=test-ca",
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.pem"),
  );
  writeFileSync(file("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  for (const name of ["server", "client"]) {
    openssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      file(`${name}.key`),
      "-out",
      file(`${name}.csr`),
    );
    openssl(
      "x509",
      "-req",
      "-in",
      file(`${name}.csr`),
      "-CA",
      file("ca.pem"),
      "-CAkey",
      file("ca.key"),
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      file("san.ext"),
      "-out",
      file(`${name}.pem`),
    );
  }
});

afterAll(async () => {
  for (const server of servers) await server.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function natsServer(config: string, jetstream = false): Promise<NatsServer> {
  const server = await NatsServer.start({ config, jetstream });
  servers.push(server);
  return server;
}

function settings(url: string, extra: Partial<NatsSettings>): NatsSettings {
  return { ...DEFAULT_SERVICE_SETTINGS, natsServer: [url], ...extra };
}

/** A message goes through the connection and comes back. */
async function roundTrip(nc: NatsConnection): Promise<void> {
  const sub = nc.subscribe("auth.check", { max: 1 });
  nc.publish("auth.check", "ping");
  for await (const msg of sub) expect(msg.string()).toBe("ping");
  await nc.close();
}

/** `connectNats` rejects at once (no retry loop) with a message naming `variable`. */
async function refused(s: NatsSettings, variable: RegExp): Promise<void> {
  const started = Date.now();
  const error = await connectNats(s).then(
    () => new Error("connected"),
    (e: unknown) => e as Error,
  );
  expect(error).toBeInstanceOf(NatsConnectError);
  expect(error.message).toMatch(variable);
  expect(Date.now() - started).toBeLessThan(60_000);
}

describe("NATS credentials and TLS", () => {
  it("authenticates with a token, and names NATS_AUTH_TOKEN when it is wrong", async () => {
    const server = await natsServer(`authorization { token: "s3cret-token" }`);
    await roundTrip(await connectNats(settings(server.url, { natsToken: "s3cret-token" })));
    await refused(settings(server.url, { natsToken: "wrong" }), /NATS_AUTH_TOKEN/);
    await refused(settings(server.url, {}), /NATS_AUTH_\* are unset/);
  });

  it("authenticates with a user and password, and names them when they are wrong", async () => {
    const server = await natsServer(`authorization { users: [ { user: "router", password: "pa55" } ] }`);
    await roundTrip(await connectNats(settings(server.url, { natsUser: "router", natsPassword: "pa55" })));
    await refused(settings(server.url, { natsUser: "router", natsPassword: "nope" }), /NATS_AUTH_USERNAME/);
    await refused(settings(server.url, { natsUser: "router" }), /NATS_AUTH_PASSWORD must be set/);
  });

  it("authenticates with an NKey seed, given inline or as a file", async () => {
    const user = createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    const server = await natsServer(`authorization { users: [ { nkey: "${user.getPublicKey()}" } ] }`);
    writeFileSync(file("user.nk"), `${seed}\n`);
    await roundTrip(await connectNats(settings(server.url, { natsNkey: seed })));
    await roundTrip(await connectNats(settings(server.url, { natsNkey: file("user.nk") })));
    const stranger = new TextDecoder().decode(createUser().getSeed());
    await refused(settings(server.url, { natsNkey: stranger }), /NATS_AUTH_NKEY/);
    await refused(settings(server.url, { natsNkey: file("missing.nk") }), /NATS_AUTH_NKEY: cannot read/);
  });

  it("authenticates with a .creds file against a server in operator mode", async () => {
    const operator = createOperator();
    const account = createAccount();
    const user = createUser();
    const operatorJwt = await encodeOperator("test-operator", operator);
    const unlimited = {
      conn: -1,
      subs: -1,
      data: -1,
      payload: -1,
      imports: -1,
      exports: -1,
      leaf: -1,
      wildcards: true,
    };
    const accountJwt = await encodeAccount(
      "test-account",
      account,
      { limits: unlimited as Account["limits"] },
      { signer: operator },
    );
    const userJwt = await encodeUser("router", user, account);
    writeFileSync(file("router.creds"), fmtCreds(userJwt, user));
    const server = await natsServer(
      `operator: ${operatorJwt}\nresolver: MEMORY\nresolver_preload: { ${account.getPublicKey()}: ${accountJwt} }\n`,
    );
    await roundTrip(await connectNats(settings(server.url, { natsCredentialsFile: file("router.creds") })));
    const otherAccount = createAccount();
    const strangerJwt = await encodeUser("stranger", user, otherAccount);
    writeFileSync(file("stranger.creds"), fmtCreds(strangerJwt, user));
    await refused(settings(server.url, { natsCredentialsFile: file("stranger.creds") }), /NATS_AUTH_CREDENTIALS_FILE/);
    await refused(
      settings(server.url, { natsCredentialsFile: file("none.creds") }),
      /NATS_AUTH_CREDENTIALS_FILE: cannot read/,
    );
  });

  it(
    "connects over TLS with a CA and a client certificate, and names the TLS settings when it cannot",
    { timeout: 120_000 },
    async () => {
      const server = await natsServer(
        `tls { cert_file: "${file("server.pem")}", key_file: "${file("server.key")}", ca_file: "${file("ca.pem")}", verify: true }`,
      );
      const url = `tls://127.0.0.1:${server.port}`;
      const tls = { natsTlsCa: file("ca.pem"), natsTlsCert: file("client.pem"), natsTlsKey: file("client.key") };
      await roundTrip(await connectNats(settings(url, tls)));
      await refused(settings(url, { natsTlsCa: file("ca.pem") }), /NATS_TLS_CERT_PATH/);
      await refused(
        settings(url, { ...tls, natsTlsCa: file("absent.pem") }),
        /NATS_TLS_CA_CERT_PATH: .* does not exist/,
      );
      await refused(settings(url, { ...tls, natsTlsKey: undefined }), /NATS_TLS_CERT_PATH and NATS_TLS_KEY_PATH/);
    },
  );

  it("runs discovery over an authenticated TLS connection configured from the environment, and refuses a wrong password at start", async () => {
    const server = await natsServer(
      `authorization { users: [ { user: "router", password: "pa55" } ] }\n` +
        `tls { cert_file: "${file("server.pem")}", key_file: "${file("server.key")}", ca_file: "${file("ca.pem")}", verify: true }`,
      true,
    );
    const env = {
      NATS_SERVER: `tls://127.0.0.1:${server.port}`,
      NATS_AUTH_USERNAME: "router",
      NATS_AUTH_PASSWORD: "pa55",
      NATS_TLS_CA_CERT_PATH: file("ca.pem"),
      NATS_TLS_CERT_PATH: file("client.pem"),
      NATS_TLS_KEY_PATH: file("client.key"),
      DYN_DISCOVERY_BACKEND: "nats",
      DYN_EVENT_PLANE: "nats",
      DYN_NAMESPACE: "secure",
      DYN_KV_CACHE_BLOCK_SIZE: String(BS),
    };
    const worker = await connectNats(
      settings(env.NATS_SERVER, {
        natsUser: "router",
        natsPassword: "pa55",
        natsTlsCa: file("ca.pem"),
        natsTlsCert: file("client.pem"),
        natsTlsKey: file("client.key"),
      }),
    );
    const registrar = new NatsWorkerRegistrar({
      connection: worker,
      worker: {
        id: 77n,
        name: "secure-worker",
        role: "both",
        namespace: "secure",
        component: "backend",
        httpEndpoint: "10.1.0.7:8000",
        rankHttpEndpoints: ["10.1.0.7:8000"],
        dpSize: 1,
        dpStartRank: 0,
        blockSize: BS,
      },
    });
    await registrar.register();
    const service = await RouterService.fromEnv(env, { tokenizer: false, log: quiet, recovery: { maxRetries: 0 } });
    try {
      await waitFor(() => service.listWorkers().length === 1, "the registered worker");
      expect((await service.route({ tokens: [1, 2, 3], queryOnly: true })).endpoint).toBe("10.1.0.7:8000");
    } finally {
      await service.stop();
      await registrar.deregister();
      await worker.close();
    }
    const error = await RouterService.fromEnv({ ...env, NATS_AUTH_PASSWORD: "wrong" }, { tokenizer: false }).then(
      () => new Error("started"),
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(NatsConnectError);
    expect(error.message).toMatch(/NATS_AUTH_USERNAME\/NATS_AUTH_PASSWORD/);
  });
});
