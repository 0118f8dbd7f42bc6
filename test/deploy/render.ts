// deploy/kubernetes rendered as `kubectl apply -k` would (the parts of kustomize its
// kustomization.yaml uses: resources, labels, images), and each object validated offline
// against its Kubernetes (or CRD) schema from kubernetes-models, plus a check for fields no
// schema declares (strict-fields.ts).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Service } from 'kubernetes-models/v1/Service';
import { parseAllDocuments } from 'yaml';
import { strictFieldChecker, type ModelType } from './strict-fields.ts';

export const MANIFESTS = new URL('../../deploy/kubernetes/', import.meta.url).pathname;

/** A rendered object; the tests narrow it further where they read it. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

interface Kind {
  type: ModelType;
  /** Throws with the schema's message when the object does not conform. */
  validate(data: unknown): void;
}

// `as never`: the model classes take their own typed data; validate() is what checks it.
const KINDS: Record<string, Kind> = {
  'apps/v1 Deployment': {
    type: { module: 'kubernetes-models/apps/v1/Deployment', name: 'IDeployment' },
    validate: (data) => new Deployment(data as never).validate(),
  },
  'v1 Service': {
    type: { module: 'kubernetes-models/v1/Service', name: 'IService' },
    validate: (data) => new Service(data as never).validate(),
  },
  'v1 PersistentVolumeClaim': {
    type: { module: 'kubernetes-models/v1/PersistentVolumeClaim', name: 'IPersistentVolumeClaim' },
    validate: (data) => new PersistentVolumeClaim(data as never).validate(),
  },
  'policy/v1 PodDisruptionBudget': {
    type: { module: 'kubernetes-models/policy/v1/PodDisruptionBudget', name: 'IPodDisruptionBudget' },
    validate: (data) => new PodDisruptionBudget(data as never).validate(),
  },
  'monitoring.coreos.com/v1 ServiceMonitor': {
    type: { module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor', name: 'IServiceMonitor' },
    validate: (data) => new ServiceMonitor(data as never).validate(),
  },
  'keda.sh/v1alpha1 ScaledObject': {
    type: { module: '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject', name: 'IScaledObject' },
    validate: (data) => new ScaledObject(data as never).validate(),
  },
};

export interface Kustomization {
  resources: string[];
  labels?: Array<{ pairs: Record<string, string> }>;
  images?: Array<{ name: string; newName?: string; newTag?: string }>;
}

export function readYaml(path: string): unknown[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return doc.toJS() as unknown;
  });
}

export function readKustomization(): Kustomization {
  const [kustomization] = readYaml(join(MANIFESTS, 'kustomization.yaml'));
  return kustomization as Kustomization;
}

/** The YAML files beside kustomization.yaml. */
export function manifestFiles(): string[] {
  return readdirSync(MANIFESTS)
    .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
    .sort();
}

function isKubeObject(value: unknown): value is KubeObject {
  const v = value as Partial<KubeObject> | null;
  return typeof v?.apiVersion === 'string' && typeof v.kind === 'string' && typeof v.metadata?.name === 'string';
}

/** Every container of a pod template, wherever the object keeps it. */
export function containersOf(object: KubeObject): Array<{ image?: string }> {
  const spec = object.spec as { template?: { spec?: { containers?: Array<{ image?: string }> } } } | undefined;
  return spec?.template?.spec?.containers ?? [];
}

/** kustomize's `labels` (metadata only, as without includeSelectors) and `images` transformers. */
export function render(kustomization: Kustomization): KubeObject[] {
  const objects = kustomization.resources.flatMap((file) =>
    readYaml(join(MANIFESTS, file)).map((doc) => {
      if (!isKubeObject(doc)) throw new Error(`${file}: a document without apiVersion, kind and metadata.name`);
      return doc;
    }),
  );
  for (const object of objects) {
    for (const { pairs } of kustomization.labels ?? []) object.metadata.labels = { ...object.metadata.labels, ...pairs };
    for (const container of containersOf(object)) {
      const image = kustomization.images?.find((i) => i.name === container.image);
      if (image !== undefined) container.image = `${image.newName ?? image.name}${image.newTag === undefined ? '' : `:${image.newTag}`}`;
    }
  }
  return objects;
}

/** Schema errors and undeclared fields of each object, by "Kind/name". */
export function validateAll(objects: readonly KubeObject[]): Record<string, string[]> {
  const unknownFields = strictFieldChecker(Object.values(KINDS).map((k) => k.type));
  const problems: Record<string, string[]> = {};
  for (const object of objects) {
    const kind = KINDS[`${object.apiVersion} ${object.kind}`];
    const found: string[] = [];
    if (kind === undefined) found.push(`no schema for ${object.apiVersion} ${object.kind}`);
    else {
      try {
        kind.validate(object);
      } catch (err) {
        found.push(err instanceof Error ? err.message : String(err));
      }
      found.push(...unknownFields(object, kind.type).map((path) => `unknown field ${path}`));
    }
    problems[`${object.kind}/${object.metadata.name}`] = found;
  }
  return problems;
}
