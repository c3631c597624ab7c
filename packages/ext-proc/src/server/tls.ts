import { generate } from "selfsigned";

/** A PEM certificate chain and its private key. */
export interface TlsMaterial {
  cert: string;
  key: string;
}

/**
 * A self-signed certificate generated now (ECDSA P-256, SHA-256, one year), with SANs `localhost`,
 * `0.0.0.0`, `127.0.0.1` and `::1`. Gateways are expected to skip verification of it.
 */
export async function selfSignedCertificate(commonName = "localhost"): Promise<TlsMaterial> {
  const notBeforeDate = new Date(Date.now() - 60_000);
  const notAfterDate = new Date(notBeforeDate.getTime() + 365 * 24 * 3600 * 1000);
  const pems = await generate([{ name: "commonName", value: commonName }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "0.0.0.0" },
          { type: 7, ip: "127.0.0.1" },
          { type: 7, ip: "::1" },
        ],
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
