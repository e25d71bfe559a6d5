/**
 * `meshlet control-plane`: runs the control-plane server over a directory of Istio YAML,
 * or over etcd (several replicas). SIGINT/SIGTERM close it gracefully.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { parseDuration } from '../../config/duration.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { ANALYSIS_MODES, type AnalysisMode } from '../../config/load-config.ts';
import { DEFAULT_PORT } from '../../control-plane/protocol.ts';
import { AddressPolicy } from '../../control-plane-server/address-policy.ts';
import { MIN_CERT_TTL_MS } from '../../control-plane-server/ca/authority.ts';
import type { EtcdTlsOptions } from '../../control-plane-server/etcd/client.ts';
import { stderrLogger } from '../../control-plane-server/logger.ts';
import { isWildcard, startControlPlane } from '../../control-plane-server/server.ts';
import { checkServingCertTtl, type ServingTlsOptions } from '../../control-plane-server/serving-tls.ts';
import type { ConfigStore, RegistryStore, SharedValues } from '../../control-plane-server/store.ts';
import { out, UsageError } from '../args.ts';
import { durationOption } from '../client.ts';
import { controlPlaneMeshConfig, watchMeshConfigFile } from './control-plane-mesh-config.ts';
import { formatHostPort } from '../../core/host-port.ts';

export const controlPlaneHelp = `Usage: meshlet control-plane --config <dir> [options]
       meshlet control-plane --etcd <url[,url]> [--config <dir>] [options]

Serves Istio resources to meshes started with createMesh({ controlPlane }), keeps the registry
of workloads, and answers 'meshlet apply | get | delete | status'.

Options:
      --config <dir>            directory of Istio YAML (watched; 'apply' writes into <dir>/applied/).
                                With --etcd, it is applied into etcd at start and on every change;
                                its resources cannot be changed through the API (409).
      --etcd <url[,url]>        keep config, registry, signing key and CA in etcd (several replicas)
      --etcd-cacert <file>      CA certificate(s) that verify etcd's (https:// URLs; default: the system's)
      --etcd-cert <file>        client certificate for etcd's --client-cert-auth ...
      --etcd-key <file>         ... and its private key (as etcdctl's --cacert, --cert, --key)
      --port <port>             port to listen on (default ${DEFAULT_PORT})
      --host <addr>             address to listen on (default 0.0.0.0, every interface;
                                with --insecure 127.0.0.1: give --host to expose it)
      --monitoring-port <port>  also serve /metrics and /healthz on this port (istiod's is 15014);
                                /metrics (Prometheus, no token) is on --port either way
      --data-dir <dir>          keeps signing-key.jwk and the CA, ca.json (default ./.meshlet)
      --root-namespace <ns>     namespace whose policies apply mesh-wide (default istio-system)
      --mesh-config <file>      Istio's MeshConfig: the istio ConfigMap's YAML (kubectl get
                                configmap istio -n istio-system -o yaml) or its data.mesh; its
                                rootNamespace and trustDomain apply unless given as flags, and
                                it is pushed to every mesh (connectTimeout, defaultHttpRetryPolicy,
                                outboundTrafficPolicy, …: under each mesh's own options), with the
                                ConfigMap's data.meshNetworks if it has one. Watched: a valid
                                change is pushed at once
      --analysis <mode>         what analysis findings (IST0101, …) do to a change: advisory
                                (default: reported in logs and /status, config applied, as in
                                Istio), blocking (error-level findings refuse the change), off
      --no-analyze              the same as --analysis off
      --insecure                accept requests without a token (test machines only!); listens
                                on 127.0.0.1 unless --host is given

TLS (istiod's port 15012; default: plain HTTP, with a warning when listening beyond loopback):
      --tls auto                serve TLS with a certificate from this control plane's CA, for
                                localhost, 127.0.0.1, ::1, the host's name, the --host address
                                (every interface's address for 0.0.0.0) and each --tls-san;
                                renewed at half its life (30 days: --tls-cert-ttl) and when the
                                CA's roots change. Clients verify it with <data-dir>/root-cert.pem
      --tls-san <name|ip>       another DNS name or IP address for --tls auto (repeatable)
      --tls-cert-ttl <duration> lifetime of the --tls auto certificate, 10m to 8760h (default 720h)
      --tls-cert <file>         serve TLS with this certificate (and its chain) of your PKI ...
      --tls-key <file>          ... and its key; both re-read every minute (cert-manager renewals)

Workload certificates (docs/control-plane.md; a root is generated at first start unless given):
      --trust-domain <td>       SPIFFE trust domain of the identities (default cluster.local)
      --cert-ttl <duration>     lifetime of workload certificates, at least 1m, e.g. 1h, 24h
                                (default 24h); workloads renew at half of it
      --ca-cert <file>          sign with this CA certificate (a root or an intermediate) ...
      --ca-key <file>           ... and its private key
      --ca-chain <file>         intermediates from its issuer up to the root (Istio's cert-chain.pem)
      --ca-root <file>          the root, when the chain does not end with it (root-cert.pem)

What workloads may register (docs/security.md):
      --registration-cidrs <cidr[,cidr]>
                                registered addresses must be in these ranges (they also admit
                                link-local or loopback ranges on purpose); default: any unicast
                                address but link-local, cloud metadata and loopback ones
      --registration-loopback   accept loopback addresses (default: only when --host is a
                                loopback address, or with --insecure)
      --registration-hostnames  accept DNS names as addresses (default: IP addresses only)
      --registration-peer-only  a workload registers only the address its request comes from

Per workload (a token's namespace/service); beyond them: 429, or 413 for a NACK:
      --max-watches-per-workload <n>        watch streams on this replica (default 100)
      --max-registrations-per-workload <n>  registered instances (default 500)
      --max-nack-reasons <n>                reasons in one NACK (default 100)
      --max-nack-bytes <n>                  bytes of one NACK's reasons (default 65536)
`;

function positive(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${flag}: expected a positive integer, got "${value}"`);
  return n;
}

/** `--etcd-cacert`, `--etcd-cert`, `--etcd-key`: read at start, for `https://` etcd URLs only. */
async function etcdTls(endpoints: readonly string[], files: { cacert?: string; cert?: string; key?: string }): Promise<EtcdTlsOptions | undefined> {
  const given = (['cacert', 'cert', 'key'] as const).filter((f) => files[f] !== undefined);
  if (given.length === 0) return undefined;
  if ((files.cert === undefined) !== (files.key === undefined)) throw new UsageError('meshlet control-plane: give --etcd-cert and --etcd-key together');
  const plain = endpoints.find((e) => !e.startsWith('https://'));
  if (plain !== undefined) throw new UsageError(`--etcd-${given[0]}: TLS needs https:// etcd URLs, got "${plain}"`);
  const read = async (flag: string, file: string | undefined): Promise<string | undefined> => {
    if (file === undefined) return undefined;
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new InvalidArgumentError(`--etcd-${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
    }
  };
  const [ca, cert, key] = await Promise.all([read('cacert', files.cacert), read('cert', files.cert), read('key', files.key)]);
  return { ...(ca === undefined ? {} : { ca }), ...(cert === undefined ? {} : { cert }), ...(key === undefined ? {} : { key }) };
}

/** `--cert-ttl`: an Istio duration (`90m`, `24h`) or days (`2d`), at least a minute. */
function certTtl(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const days = /^(\d+(?:\.\d+)?)d$/.exec(text);
  const ms = days !== null ? Number(days[1]) * 86_400_000 : parseDuration(text);
  if (typeof ms !== 'number') throw new UsageError(`--cert-ttl: ${ms.error}`);
  if (ms < MIN_CERT_TTL_MS) throw new UsageError(`--cert-ttl: must be at least 1m (workloads renew at half the lifetime), got "${text}"`);
  return ms;
}

/** `--tls auto [--tls-san …]`, `--tls-cert`/`--tls-key`, or none (plain HTTP). */
function servingTls(v: { tls?: string | undefined; 'tls-san'?: string[] | undefined; 'tls-cert'?: string | undefined; 'tls-key'?: string | undefined; 'tls-cert-ttl'?: string | undefined }): ServingTlsOptions | undefined {
  if (v.tls !== undefined && v.tls !== 'auto' && v.tls !== 'off') throw new UsageError(`--tls: expected auto (a certificate from this control plane's CA) or off, got "${v.tls}"; a certificate of your own goes in --tls-cert and --tls-key`);
  const files = v['tls-cert'] !== undefined || v['tls-key'] !== undefined;
  if (files && (v['tls-cert'] === undefined || v['tls-key'] === undefined)) throw new UsageError('meshlet control-plane: give --tls-cert and --tls-key together');
  if (files && v.tls !== undefined) throw new UsageError(`meshlet control-plane: --tls ${v.tls} contradicts --tls-cert/--tls-key (they serve your certificate; --tls auto issues one)`);
  if (v['tls-san'] !== undefined && v.tls !== 'auto') throw new UsageError('meshlet control-plane: --tls-san names what a --tls auto certificate is for; give --tls auto (a --tls-cert names its own)');
  for (const n of v['tls-san'] ?? []) {
    if (!(isIP(n) !== 0 || /^(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?\.?$/i.test(n))) throw new UsageError(`--tls-san: "${n}" is neither a DNS name nor an IP address`);
    // A mistyped address (10.0.0.300) passes as a DNS name, and no client would ever ask for it.
    if (isIP(n) === 0 && /^[0-9.]+$/.test(n)) throw new UsageError(`--tls-san: "${n}" is not an IP address (and a DNS name does not end in a numeric label)`);
  }
  if (v['tls-cert-ttl'] !== undefined && v.tls !== 'auto') throw new UsageError(`meshlet control-plane: --tls-cert-ttl is the lifetime of a --tls auto certificate; give --tls auto${files ? ' (a --tls-cert has its own lifetime)' : ''}`);
  const ttlMs = durationOption('--tls-cert-ttl', v['tls-cert-ttl']);
  if (ttlMs !== undefined) {
    try {
      checkServingCertTtl(ttlMs, '--tls-cert-ttl', `"${v['tls-cert-ttl']}"`);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  if (files) return { certFile: v['tls-cert']!, keyFile: v['tls-key']! };
  if (v.tls === 'auto') return { auto: true, sans: v['tls-san'] ?? [], ...(ttlMs === undefined ? {} : { ttlMs }) };
  return undefined;
}

function analysisMode(value: string | undefined, noAnalyze: boolean): AnalysisMode {
  if (value === undefined) return noAnalyze ? 'off' : 'advisory';
  if (!(ANALYSIS_MODES as readonly string[]).includes(value)) throw new UsageError(`--analysis: expected ${ANALYSIS_MODES.join(', ')}, got "${value}"`);
  if (noAnalyze && value !== 'off') throw new UsageError(`--no-analyze contradicts --analysis ${value}`);
  return value as AnalysisMode;
}

/** Runs the command; resolves with the exit code once a signal closed the server. */
export async function controlPlaneCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      etcd: { type: 'string' },
      'etcd-cacert': { type: 'string' },
      'etcd-cert': { type: 'string' },
      'etcd-key': { type: 'string' },
      port: { type: 'string' },
      'monitoring-port': { type: 'string' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
      'root-namespace': { type: 'string' },
      'mesh-config': { type: 'string' },
      'no-analyze': { type: 'boolean' },
      analysis: { type: 'string' },
      insecure: { type: 'boolean' },
      tls: { type: 'string' },
      'tls-san': { type: 'string', multiple: true },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-cert-ttl': { type: 'string' },
      'registration-cidrs': { type: 'string' },
      'registration-loopback': { type: 'boolean' },
      'registration-hostnames': { type: 'boolean' },
      'registration-peer-only': { type: 'boolean' },
      'max-watches-per-workload': { type: 'string' },
      'max-registrations-per-workload': { type: 'string' },
      'max-nack-reasons': { type: 'string' },
      'max-nack-bytes': { type: 'string' },
      'trust-domain': { type: 'string' },
      'cert-ttl': { type: 'string' },
      'ca-cert': { type: 'string' },
      'ca-key': { type: 'string' },
      'ca-chain': { type: 'string' },
      'ca-root': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    out(controlPlaneHelp);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`meshlet control-plane: unexpected argument "${positionals[0]}"`);
  if (values.config === undefined && values.etcd === undefined) throw new UsageError('meshlet control-plane: give --config <dir> (or --etcd <urls>)');
  const etcdFlag = (['etcd-cacert', 'etcd-cert', 'etcd-key'] as const).find((f) => values[f] !== undefined);
  if (values.etcd === undefined && etcdFlag !== undefined) throw new UsageError(`meshlet control-plane: --${etcdFlag} goes with --etcd`);
  const port = values.port === undefined ? DEFAULT_PORT : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: expected 0..65535, got "${values.port}"`);
  const monitoringPort = values['monitoring-port'] === undefined ? undefined : Number(values['monitoring-port']);
  if (monitoringPort !== undefined && (values['monitoring-port'] === '' || !Number.isInteger(monitoringPort) || monitoringPort < 0 || monitoringPort > 65535)) {
    throw new UsageError(`--monitoring-port: expected 0..65535, got "${values['monitoring-port']}"`);
  }
  const analysis = analysisMode(values.analysis, values['no-analyze'] === true);
  const limits = {
    maxWatchesPerWorkload: positive('max-watches-per-workload', values['max-watches-per-workload']),
    maxRegistrationsPerWorkload: positive('max-registrations-per-workload', values['max-registrations-per-workload']),
    maxNackReasons: positive('max-nack-reasons', values['max-nack-reasons']),
    maxNackBytes: positive('max-nack-bytes', values['max-nack-bytes']),
  };
  const certTtlMs = certTtl(values['cert-ttl']);
  if ((values['ca-cert'] === undefined) !== (values['ca-key'] === undefined)) throw new UsageError('meshlet control-plane: give --ca-cert and --ca-key together');
  if (values['ca-cert'] === undefined && (values['ca-chain'] !== undefined || values['ca-root'] !== undefined)) throw new UsageError('meshlet control-plane: --ca-chain and --ca-root go with --ca-cert and --ca-key');
  const ca =
    values['ca-cert'] === undefined
      ? undefined
      : { certFile: values['ca-cert'], keyFile: values['ca-key']!, ...(values['ca-chain'] === undefined ? {} : { chainFile: values['ca-chain'] }), ...(values['ca-root'] === undefined ? {} : { rootFile: values['ca-root'] }) };
  const tls = servingTls(values);
  const cidrs = values['registration-cidrs']
    ?.split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '');
  const registrationAddresses = {
    ...(cidrs === undefined ? {} : { allow: cidrs }),
    ...(values['registration-loopback'] === true ? { loopback: true } : {}),
    ...(values['registration-hostnames'] === true ? { hostnames: true } : {}),
    ...(values['registration-peer-only'] === true ? { peerOnly: true } : {}),
  };
  try {
    new AddressPolicy({ ...registrationAddresses, loopback: false });
  } catch (err) {
    throw new UsageError(`--registration-cidrs: ${(err as Error).message.replace(/^registration address allow list: /, '')}`);
  }

  let store: ConfigStore | undefined;
  let registry: RegistryStore | undefined;
  let shared: SharedValues | undefined;
  let closeEtcd = async (): Promise<void> => {};
  if (values.etcd !== undefined) {
    const endpoints = values.etcd.split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (endpoints.length === 0) throw new UsageError('--etcd: give at least one URL');
    const { openEtcd } = await import('../../control-plane-server/etcd/index.ts');
    // With --config, the directory is watched and applied into etcd (its resources are then the files').
    const tls = await etcdTls(endpoints, { cacert: values['etcd-cacert'], cert: values['etcd-cert'], key: values['etcd-key'] });
    const etcd = await openEtcd(endpoints, { analysis, logger: stderrLogger, configDir: values.config, ...(tls === undefined ? {} : { tls }) });
    ({ store, registry, shared } = etcd);
    closeEtcd = () => etcd.close();
    if (etcd.files !== undefined && (etcd.files.resources > 0 || etcd.files.changed > 0)) {
      // On stderr with the rest of the log: stdout holds only the "listening on" line (a supervisor may wait for it).
      stderrLogger.info?.(`applied ${etcd.files.resources} resource(s) from ${values.config} into etcd (${etcd.files.changed} changed)`);
    }
  }

  // Watched before it is read: an edit while the control plane starts is pushed once it is up.
  const meshConfigFile = values['mesh-config'];
  const meshConfigWatch = meshConfigFile === undefined ? undefined : watchMeshConfigFile(meshConfigFile);
  let fromMesh: Awaited<ReturnType<typeof controlPlaneMeshConfig>>;
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  try {
    fromMesh = await controlPlaneMeshConfig(meshConfigFile);
    cp = await startControlPlane({
      configDir: store === undefined ? values.config : undefined,
      store,
      registry,
      shared,
      dataDir: values['data-dir'] ?? '.meshlet',
      host: values.host,
      port,
      monitoringPort,
      insecure: values.insecure === true,
      analysis,
      rootNamespace: values['root-namespace'] ?? fromMesh.rootNamespace,
      ...(fromMesh.meshConfig === undefined ? {} : { meshConfig: fromMesh.meshConfig, meshConfigSource: values['mesh-config'] }),
      ...(fromMesh.meshNetworks === undefined ? {} : { meshNetworks: fromMesh.meshNetworks }),
      registrationAddresses,
      limits,
      trustDomain: values['trust-domain'] ?? fromMesh.trustDomain,
      certTtlMs,
      ca,
      tls,
    });
  } catch (err) {
    meshConfigWatch?.stop();
    await closeEtcd();
    throw err;
  }
  const status = cp.status();
  // What is bound: a wildcard host is every interface, and cp.url (127.0.0.1) reaches it from this host.
  const bound = isWildcard(cp.host) ? `${new URL(cp.url).protocol}//${formatHostPort(cp.host, cp.port)} (all interfaces; this host: ${cp.url})` : cp.url;
  out(`meshlet control-plane listening on ${bound} (config version ${status.configVersion}, source ${status.source.kind}:${status.source.location})`);
  if (cp.monitoringUrl !== undefined) out(`meshlet control-plane metrics on ${cp.monitoringUrl}/metrics`);
  meshConfigWatch?.attach(cp);
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      meshConfigWatch?.stop();
      stderrLogger.info?.(`${signal}: closing`);
      cp.close()
        .then(closeEtcd)
        .then(
          () => resolve(0),
          (err: unknown) => {
            stderrLogger.warn(`closing: ${(err as Error).message}`);
            resolve(1);
          },
        );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
