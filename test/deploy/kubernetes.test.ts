// deploy/kubernetes: every manifest listed in kustomization.yaml and valid against its schema
// (offline, kubernetes-models), and what the manifests say about the server checked against
// the server itself: its settings (server/config.ts reads the container's environment), its
// /health and /metrics answers from a real app (loading and ready), its metric names, and
// the shutdown grace period main.ts needs.
import { readFileSync } from 'node:fs';
import type { IScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { IService } from 'kubernetes-models/v1/Service';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../server/app.ts';
import { resolveConfig, SETTINGS, type ServerConfig } from '../../server/config.ts';
import { FLUSH_MS } from '../../server/main.ts';
import type { ServedModel } from '../../server/served-model.ts';
import { familyNames } from '../helpers/prometheus-text.ts';
import { startTestModel, type TestModel } from '../server/helpers.ts';
import { containersOf, type KubeObject, manifestFiles, readKustomization, render, validateAll } from './render.ts';

const DOCS = new URL('../../docs/kubernetes.md', import.meta.url).pathname;
const kustomization = readKustomization();
const objects = render(kustomization);

function one<T>(kind: string): T {
  const found = objects.filter((o) => o.kind === kind);
  expect(found, kind).toHaveLength(1);
  return found[0] as unknown as T;
}

const deployment = one<IDeployment>('Deployment');
const pod = deployment.spec!.template.spec!;
const container = pod.containers[0];

/** The server's settings as this container would resolve them (downward-API values filled in). */
function containerConfig(): ServerConfig {
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    const field = variable.valueFrom?.resourceFieldRef?.resource;
    env[variable.name] = variable.value ?? (field === 'limits.cpu' ? String(container.resources!.limits!.cpu) : '');
  }
  return resolveConfig({}, env);
}

describe('the manifests', () => {
  it('kustomization.yaml lists every manifest in the folder, each once', () => {
    expect([...kustomization.resources].sort()).toEqual(manifestFiles());
  });

  it('render to objects valid against their Kubernetes and CRD schemas, with no undeclared field', () => {
    const problems = validateAll(objects);
    expect(Object.keys(problems).sort()).toEqual([
      'Deployment/moe-server',
      'PersistentVolumeClaim/moe-server-cache',
      'PersistentVolumeClaim/moe-server-models',
      'PodDisruptionBudget/moe-server',
      'ScaledObject/moe-server',
      'Service/moe-server',
      'ServiceMonitor/moe-server',
    ]);
    expect(problems).toEqual(Object.fromEntries(Object.keys(problems).map((key) => [key, []])));
    // kustomize's images transformer replaced the placeholder.
    for (const object of objects) for (const c of containersOf(object)) expect(c.image).toMatch(/^registry\.example\.com\/moe-server:/);
  });

  it('the validation catches a misspelt field and a wrong type', () => {
    const broken = structuredClone(objects.find((o) => o.kind === 'Deployment')!) as KubeObject & {
      spec: { template: { spec: Record<string, unknown> } };
    };
    broken.spec.template.spec.terminationGracePeriodSecond = 45;
    broken.spec.template.spec.restartPolicy = 7;
    const [problems] = Object.values(validateAll([broken]));
    expect(problems).toContain('unknown field .spec.template.spec.terminationGracePeriodSecond');
    expect(problems.some((p) => p.includes('restartPolicy'))).toBe(true);
  });
});

describe('the Deployment against the server', () => {
  const config = containerConfig();

  it('sets only settings the server has, and listens where the probes and the Service look', () => {
    const known = new Set(Object.values(SETTINGS).map((s) => s.env));
    expect((container.env ?? []).map((e) => e.name).filter((name) => !known.has(name))).toEqual([]);
    expect(config.host).toBe('0.0.0.0');
    expect(container.ports).toEqual([{ name: 'http', containerPort: config.port }]);
    const service = one<IService>('Service');
    expect(service.spec!.ports).toEqual([{ name: 'http', port: config.port, targetPort: 'http' }]);
    expect(service.spec!.selector).toEqual(deployment.spec!.selector.matchLabels);
  });

  it('gives model loading a startup budget, then probes readiness and liveness', () => {
    const { startupProbe, readinessProbe, livenessProbe } = container;
    for (const probe of [startupProbe, readinessProbe, livenessProbe]) expect(probe?.httpGet).toEqual({ path: '/health', port: 'http' });
    // Compiling and loading a large checkpoint takes minutes; liveness waits for startup.
    expect(startupProbe!.periodSeconds! * startupProbe!.failureThreshold!).toBeGreaterThanOrEqual(20 * 60);
    expect(livenessProbe!.initialDelaySeconds).toBeUndefined();
  });

  it('gives a stopping replica its preStop pause, --shutdown-timeout, and the flush and engine stop after it', () => {
    const preStop = container.lifecycle!.preStop!.exec!.command!;
    expect(preStop[0]).toBe('sleep');
    const needed = Number(preStop[1]) + config.shutdownTimeout + FLUSH_MS / 1000;
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(needed + 5);
  });

  it('keeps the compiled-model cache and the checkpoints on volumes, the checkpoints read-only', () => {
    const mounts = container.volumeMounts ?? [];
    const claims = new Map(pod.volumes!.map((v) => [v.name, v.persistentVolumeClaim?.claimName]));
    const pvcs = objects.filter((o) => o.kind === 'PersistentVolumeClaim') as unknown as IPersistentVolumeClaim[];
    const cache = mounts.find((m) => m.mountPath === config.cacheDir);
    expect(pvcs.map((p) => p.metadata!.name)).toContain(claims.get(cache!.name));
    expect(cache!.readOnly).toBeUndefined();
    const models = mounts.find((m) => config.model!.startsWith(`${m.mountPath}/`));
    expect(models?.readOnly).toBe(true);
    expect(pvcs.map((p) => p.metadata!.name)).toContain(claims.get(models!.name));
    // Replicas share the cache: a volume every node can mount read-write.
    expect(pvcs.find((p) => p.metadata!.name === claims.get(cache!.name))!.spec!.accessModes).toEqual(['ReadWriteMany']);
  });

  it('sizes threads from the CPU limit, with requests equal to limits, one replica per machine', () => {
    expect(container.env!.find((e) => e.name === SETTINGS.threads.env)!.valueFrom!.resourceFieldRef).toEqual({
      resource: 'limits.cpu',
      divisor: '1',
    });
    expect(container.resources!.requests).toEqual(container.resources!.limits);
    expect(config.threads).toBe(Number(container.resources!.limits!.cpu));
    const antiAffinity = pod.affinity!.podAntiAffinity!.requiredDuringSchedulingIgnoredDuringExecution!;
    expect(antiAffinity).toEqual([
      { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: deployment.spec!.selector.matchLabels } },
    ]);
    expect(one<IPodDisruptionBudget>('PodDisruptionBudget').spec!.selector).toEqual(deployment.spec!.selector);
  });
});

describe('probes, scraping and autoscaling against a real app', () => {
  let test: TestModel;
  let ready: App;
  let metricNames: Set<string>;
  beforeAll(async () => {
    test = await startTestModel();
    // With API keys on: probes must still get through.
    ready = await buildApp({ model: test.model, apiKeys: ['k'] });
    const metrics = await ready.app.inject({ url: '/metrics', headers: { authorization: 'Bearer k' } });
    metricNames = familyNames(metrics.body);
  });
  afterAll(async () => {
    await ready?.app.close();
    await test?.close();
  });

  it('the probe path answers 503 while the model loads and 200 once it is ready, without an API key', async () => {
    const path = container.readinessProbe!.httpGet!.path!;
    const loading = await buildApp({ model: new Promise<ServedModel>(() => {}), apiKeys: ['k'] });
    try {
      expect((await loading.app.inject({ url: path })).statusCode).toBe(503);
    } finally {
      await loading.app.close();
    }
    expect((await ready.app.inject({ url: path })).statusCode).toBe(200);
  });

  it('the ServiceMonitor scrapes the Service port that serves /metrics', async () => {
    const monitor = one<IServiceMonitor>('ServiceMonitor');
    const service = one<IService>('Service');
    expect(service.metadata!.labels).toMatchObject(monitor.spec.selector.matchLabels!);
    const [endpoint] = monitor.spec.endpoints!;
    expect(service.spec!.ports!.map((p) => p.name)).toContain(endpoint.port);
    const response = await ready.app.inject({ url: endpoint.path!, headers: { authorization: 'Bearer k' } });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('KEDA scales the Deployment on the queue, with metric names the server exports', () => {
    const scaled = one<IScaledObject>('ScaledObject');
    expect(scaled.spec.scaleTargetRef.name).toBe(deployment.metadata!.name);
    const queries = scaled.spec.triggers.map((t) => String(t.metadata.query));
    const names = queries.flatMap((q) => [...q.matchAll(/\bmoe_[a-z0-9_]+/g)].map((m) => m[0]));
    expect(names).toContain('moe_num_requests_waiting');
    expect(names.filter((n) => !metricNames.has(n))).toEqual([]);
    for (const query of queries) expect(query).toContain(`service="${one<IService>('Service').metadata!.name}"`);
    // The running-set trigger asks for a replica before this one's running set is full.
    const running = scaled.spec.triggers.find((t) => String(t.metadata.query).includes('moe_num_requests_running'))!;
    expect(Number(running.metadata.threshold)).toBeLessThan(containerConfig().maxNumSeqs);
  });

  it('docs/kubernetes.md names only metrics the server exports', () => {
    const names = new Set([...readFileSync(DOCS, 'utf8').matchAll(/\bmoe_[a-z0-9_]+/g)].map((m) => m[0]));
    expect(names.size).toBeGreaterThan(2);
    expect([...names].filter((n) => !metricNames.has(n) && !metricNames.has(n.replace(/_(bucket|sum|count)$/, '')))).toEqual([]);
  });
});
