/**
 * The kustomize manifests: they render, every object matches the Kubernetes OpenAPI
 * schema (offline, from the `kubernetes-models` package: types, enums and required
 * fields through its validators, unknown fields through TypeScript's excess-property
 * check against its interfaces), and the driver-specific promises hold: RBAC, the
 * CSIDriver, mount propagation, StorageClass/ConfigMap keys the driver accepts.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Job } from "kubernetes-models/batch/v1/Job";
import { ClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { CSIDriver } from "kubernetes-models/storage.k8s.io/v1/CSIDriver";
import { StorageClass } from "kubernetes-models/storage.k8s.io/v1/StorageClass";
import { type KubeObject, renderObjects } from "../fixtures/kube/manifests.ts";
import { grantAllows, grantsFromManifests, type RequestAttributes } from "../fixtures/kube/rbac.ts";
import {
  resolveSettings,
  validateVolumeParameters,
  VOLUME_PARAMETER_KEYS,
} from "../../zerofs/settings.ts";
import {
  AWS_CREDENTIALS_SECRET_KEYS,
  ENCRYPTION_PASSWORD_SECRET_KEY,
} from "../../zerofs/secrets.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const KUSTOMIZATIONS = ["base", "overlays/dev", "overlays/production"];
const MODELS_VERSION = "5.1.0";
const NODE_USER = "system:serviceaccount:zerofs:zerofs-csi-node";
const CONTROLLER_USER = "system:serviceaccount:zerofs:zerofs-csi-controller";

/** apiVersion/kind → the kubernetes-models class and the module that declares its interface. */
const MODELS: Record<
  string,
  { model: new (data: KubeObject) => { validate(): void }; module: string }
> = {
  "v1/Namespace": { model: Namespace, module: "v1/Namespace" },
  "v1/ServiceAccount": { model: ServiceAccount, module: "v1/ServiceAccount" },
  "v1/ConfigMap": { model: ConfigMap, module: "v1/ConfigMap" },
  "v1/Secret": { model: Secret, module: "v1/Secret" },
  "v1/Service": { model: Service, module: "v1/Service" },
  "apps/v1/Deployment": { model: Deployment, module: "apps/v1/Deployment" },
  "apps/v1/DaemonSet": { model: DaemonSet, module: "apps/v1/DaemonSet" },
  "batch/v1/Job": { model: Job, module: "batch/v1/Job" },
  "rbac.authorization.k8s.io/v1/ClusterRole": {
    model: ClusterRole,
    module: "rbac.authorization.k8s.io/v1/ClusterRole",
  },
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": {
    model: ClusterRoleBinding,
    module: "rbac.authorization.k8s.io/v1/ClusterRoleBinding",
  },
  "rbac.authorization.k8s.io/v1/Role": { model: Role, module: "rbac.authorization.k8s.io/v1/Role" },
  "rbac.authorization.k8s.io/v1/RoleBinding": {
    model: RoleBinding,
    module: "rbac.authorization.k8s.io/v1/RoleBinding",
  },
  "storage.k8s.io/v1/CSIDriver": { model: CSIDriver, module: "storage.k8s.io/v1/CSIDriver" },
  "storage.k8s.io/v1/StorageClass": {
    model: StorageClass,
    module: "storage.k8s.io/v1/StorageClass",
  },
};

const rendered = new Map<string, KubeObject[]>();
async function render(kustomization: string): Promise<KubeObject[]> {
  let objects = rendered.get(kustomization);
  if (!objects) {
    objects = await renderObjects(join(ROOT, "manifests", kustomization));
    rendered.set(kustomization, objects);
  }
  return objects;
}

function find(objects: KubeObject[], kind: string, name: string): KubeObject {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
  assert(found, `no ${kind} ${name} in the rendered manifests`);
  return found;
}

function modelOf(obj: KubeObject) {
  const entry = MODELS[`${obj.apiVersion}/${obj.kind}`];
  assert(entry, `no schema model for ${obj.apiVersion} ${obj.kind}: add it to MODELS`);
  return entry;
}

function allContainers(podSpec: KubeObject): KubeObject[] {
  return [...(podSpec.initContainers ?? []), ...(podSpec.containers ?? [])];
}

/** `deno check` a file that assigns each object to its kubernetes-models interface. */
async function typeCheck(objects: KubeObject[]): Promise<{ ok: boolean; output: string }> {
  const dir = `/run/zerofs-csi/test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  try {
    const lines: string[] = [];
    objects.forEach((obj, i) => {
      const { module } = modelOf(obj);
      const iface = `I${obj.kind}`;
      lines.push(
        `import type { ${iface} as T${i} } from "npm:kubernetes-models@${MODELS_VERSION}/${module}";`,
        `// ${obj.kind} ${obj.metadata?.namespace ?? ""}/${obj.metadata?.name}`,
        `export const o${i}: T${i} = ${JSON.stringify(obj, null, 2)};`,
      );
    });
    const file = join(dir, "objects.ts");
    await Deno.writeTextFile(file, lines.join("\n") + "\n");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--no-lock", "--no-config", file],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const output = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return { ok: out.code === 0, output };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

for (const k of KUSTOMIZATIONS) {
  Deno.test(`${k}: renders and every object passes the Kubernetes schema validators`, async () => {
    const objects = await render(k);
    assert(objects.length >= 15, `${k} rendered only ${objects.length} objects`);
    for (const obj of objects) {
      const { model } = modelOf(obj);
      try {
        new model(obj).validate();
      } catch (e) {
        throw new Error(
          `${k}: ${obj.kind} ${obj.metadata?.name} does not match the schema: ${
            e instanceof Error ? e.message : e
          }`,
        );
      }
    }
  });

  Deno.test(`${k}: no object has a field the Kubernetes schema does not define`, async () => {
    const { ok, output } = await typeCheck(await render(k));
    assert(ok, `${k}: unknown or mistyped fields:\n${output}`);
  });

  Deno.test(`${k}: RBAC keeps secrets away from the node agent`, async () => {
    const grants = grantsFromManifests(await render(k));
    const allowed = (user: string, req: RequestAttributes) =>
      (grants.get(user) ?? []).some((g) => grantAllows(g, req));
    for (const verb of ["get", "list", "watch", "create", "update", "patch", "delete"]) {
      for (const namespace of ["zerofs", "default", undefined]) {
        const req = { verb, group: "", resource: "secrets", namespace, name: "x" };
        assert(!allowed(NODE_USER, req), `node agent may ${verb} secrets in ${namespace}`);
      }
    }
    const get = (namespace: string | undefined, resource: string, verb = "get") => ({
      verb,
      group: "",
      resource,
      namespace,
      name: "x",
    });
    assert(allowed(CONTROLLER_USER, get("zerofs", "secrets")));
    assert(
      allowed(CONTROLLER_USER, { ...get(undefined, "csinodes"), group: "storage.k8s.io" }),
      "the controller cannot tell whether a node exists (ControllerPublishVolume)",
    );
    assert(!allowed(CONTROLLER_USER, get("default", "secrets")), "controller reads all secrets");
    assert(!allowed(CONTROLLER_USER, get("zerofs", "secrets", "list")));
    assert(allowed(NODE_USER, get("zerofs", "pods", "create")));
    assert(!allowed(NODE_USER, get("default", "pods", "create")), "node creates pods anywhere");
    assert(!allowed(NODE_USER, get("default", "pods")), "node reads workload pods");
    assert(allowed(NODE_USER, get("zerofs", "configmaps")));
    assert(!allowed(NODE_USER, get("zerofs", "configmaps", "update")));
  });
}

Deno.test("the unknown-field check catches a misspelled field", async () => {
  const objects = await render("base");
  const ds = structuredClone(find(objects, "DaemonSet", "zerofs-csi-node"));
  ds.spec.template.spec.containers[0].volumeMounts[0].mountPropogation = "Bidirectional";
  const { ok, output } = await typeCheck([ds]);
  assert(!ok, "a misspelled field passed the check");
  assert(output.includes("mountPropogation"), output);
});

Deno.test("base: the CSIDriver declares what the driver implements", async () => {
  const driver = find(await render("base"), "CSIDriver", "zerofs.csi.driver");
  assert.deepEqual(driver.spec, {
    attachRequired: true,
    podInfoOnMount: true,
    fsGroupPolicy: "File",
    requiresRepublish: false,
    volumeLifecycleModes: ["Persistent"],
  });
});

Deno.test("base: the node DaemonSet mounts and starts the agent as the driver expects", async () => {
  const objects = await render("base");
  const ds = find(objects, "DaemonSet", "zerofs-csi-node");
  const pod = ds.spec.template.spec;
  assert.equal(pod.hostNetwork, false);
  assert.equal(pod.priorityClassName, "system-node-critical");
  assert.equal(pod.serviceAccountName, "zerofs-csi-node");
  const agent = pod.containers.find((c: KubeObject) => c.name === "zerofs-csi");
  assert.equal(agent.securityContext?.privileged, true);
  assert.deepEqual(agent.args, [
    "node",
    "--endpoint",
    "unix:///csi/csi.sock",
    "--node-id",
    "$(NODE_NAME)",
    "--runner",
    "pod",
    "--attach-mode",
    "kernel",
    "--state-dir",
    "/var/lib/zerofs-csi",
    "--namespace",
    "zerofs",
  ]);
  assert.deepEqual(agent.env.find((e: KubeObject) => e.name === "NODE_NAME").valueFrom, {
    fieldRef: { fieldPath: "spec.nodeName" },
  });
  const volumes = new Map(pod.volumes.map((v: KubeObject) => [v.name, v]));
  const mountAt = (path: string) => {
    const m = agent.volumeMounts.find((m: KubeObject) => m.mountPath === path);
    assert(m, `the agent has no mount at ${path}`);
    return { mount: m, volume: volumes.get(m.name) as KubeObject };
  };
  const kubelet = mountAt("/var/lib/kubelet");
  assert.equal(kubelet.mount.mountPropagation, "Bidirectional");
  assert.equal(kubelet.volume.hostPath.path, "/var/lib/kubelet");
  assert.equal(mountAt("/dev").volume.hostPath.path, "/dev");
  assert.equal(mountAt("/sys").volume.hostPath.path, "/sys");
  const modules = mountAt("/lib/modules");
  assert.equal(modules.mount.readOnly, true);
  const state = mountAt("/var/lib/zerofs-csi");
  assert.deepEqual(state.volume.hostPath, {
    path: "/var/lib/zerofs-csi",
    type: "DirectoryOrCreate",
  });
  const socket = mountAt("/csi");
  assert.equal(socket.volume.hostPath.path, "/var/lib/kubelet/plugins/zerofs.csi.driver");
  // The API server rejects Bidirectional propagation outside privileged containers.
  for (const c of allContainers(pod)) {
    for (const m of c.volumeMounts ?? []) {
      if (m.mountPropagation === "Bidirectional") {
        assert.equal(
          c.securityContext?.privileged,
          true,
          `${c.name} mounts Bidirectional unprivileged`,
        );
      }
    }
  }
  const registrar = pod.containers.find((c: KubeObject) => c.name === "node-driver-registrar");
  assert(
    registrar.args.includes(
      "--kubelet-registration-path=/var/lib/kubelet/plugins/zerofs.csi.driver/csi.sock",
    ),
  );
  const registration = registrar.volumeMounts.find((m: KubeObject) =>
    m.mountPath === "/registration"
  );
  assert.equal(
    (volumes.get(registration.name) as KubeObject).hostPath.path,
    "/var/lib/kubelet/plugins_registry",
  );
  const init = pod.initContainers.find((c: KubeObject) => c.name === "load-nbd");
  assert.equal(init.command[0], "modprobe");
  assert.equal(init.command[1], "nbd");
  assert.match(init.command[2], /^nbds_max=\d+$/);
  assert.equal(init.securityContext?.privileged, true);
  assert(["OnDelete", "RollingUpdate"].includes(ds.spec.updateStrategy.type));
});

for (const k of KUSTOMIZATIONS) {
  Deno.test(`${k}: no RBAC for snapshots, which neither the driver nor its sidecars use`, async () => {
    const objects = await render(k);
    const images = objects.filter((o) => o.kind === "Deployment" || o.kind === "DaemonSet")
      .flatMap((o) => o.spec.template.spec.containers.map((c: KubeObject) => String(c.image)));
    assert.ok(!images.some((i) => i.includes("snapshotter")), images.join());
    const grants = objects.filter((o) => o.kind === "ClusterRole" || o.kind === "Role")
      .flatMap((o) => (o.rules ?? []).map((r: KubeObject) => ({ role: o.metadata.name, ...r })))
      .filter((r) =>
        (r.apiGroups ?? []).includes("snapshot.storage.k8s.io") ||
        (r.resources ?? []).some((res: string) => res.includes("snapshot"))
      );
    assert.deepEqual(grants, []);
  });
}

Deno.test("base: the controller runs the driver with its sidecars on one socket", async () => {
  const deploy = find(await render("base"), "Deployment", "zerofs-csi-controller");
  assert.equal(deploy.spec.replicas, 1);
  assert.equal(deploy.spec.strategy.type, "Recreate");
  const containers = deploy.spec.template.spec.containers;
  const byName = new Map(containers.map((c: KubeObject) => [c.name, c]));
  assert.deepEqual((byName.get("zerofs-csi") as KubeObject).args, [
    "controller",
    "--endpoint",
    "unix:///csi/csi.sock",
    "--default-config-map=zerofs-default",
    "--namespace=$(POD_NAMESPACE)",
  ]);
  const provisioner = byName.get("csi-provisioner") as KubeObject;
  for (
    const flag of [
      "--extra-create-metadata",
      "--feature-gates=Topology=false",
      "--default-fstype=ext4",
      "--leader-election",
    ]
  ) {
    assert(provisioner.args.includes(flag), `csi-provisioner lacks ${flag}`);
  }
  for (const name of ["csi-attacher", "csi-resizer"]) {
    assert(
      (byName.get(name) as KubeObject).args.includes("--leader-election"),
      `${name} lacks leader election`,
    );
  }
  assert(byName.has("liveness-probe"));
  for (const c of containers) {
    assert(
      c.volumeMounts.some((m: KubeObject) => m.mountPath === "/csi"),
      `${c.name} does not share the CSI socket directory`,
    );
  }
});

for (const k of KUSTOMIZATIONS) {
  Deno.test(`${k}: StorageClass parameters and ConfigMap keys are ones the driver accepts`, async () => {
    const objects = await render(k);
    const sc = find(objects, "StorageClass", "zerofs");
    assert.equal(sc.provisioner, "zerofs.csi.driver");
    assert.equal(sc.allowVolumeExpansion, true);
    assert.equal(sc.reclaimPolicy, "Delete");
    assert.equal(sc.volumeBindingMode, "WaitForFirstConsumer");
    for (const key of Object.keys(sc.parameters)) {
      assert(
        VOLUME_PARAMETER_KEYS.has(key),
        `StorageClass parameter ${key} is unknown to the driver`,
      );
    }
    validateVolumeParameters(sc.parameters);
    const cm = find(objects, "ConfigMap", sc.parameters.configMapName);
    assert.equal(cm.metadata.namespace, "zerofs");
    const settings = resolveSettings({ parameters: sc.parameters, configMap: cm.data });
    const secrets = objects.filter((o) => o.kind === "Secret");
    if (k === "overlays/production") {
      assert.deepEqual(secrets, [], "production must not ship placeholder Secrets");
      return;
    }
    const aws = find(objects, "Secret", settings.awsCredentialsSecretName!);
    const awsKeys = Object.keys(aws.stringData ?? aws.data);
    assert(awsKeys.includes(AWS_CREDENTIALS_SECRET_KEYS.accessKeyId[0]));
    assert(awsKeys.includes(AWS_CREDENTIALS_SECRET_KEYS.secretAccessKey[0]));
    const enc = find(objects, "Secret", settings.encryptionPasswordSecretName!);
    assert(Object.keys(enc.stringData ?? enc.data).includes(ENCRYPTION_PASSWORD_SECRET_KEY));
  });

  Deno.test(`${k}: every image is pinned`, async () => {
    for (const obj of await render(k)) {
      const pod = obj.spec?.template?.spec;
      if (!pod) continue;
      for (const c of allContainers(pod)) {
        assert(/[:@]/.test(c.image) && !c.image.endsWith(":latest"), `${c.name}: ${c.image}`);
        if (k === "overlays/production" && c.image.includes("zerofs-csi")) {
          assert.match(c.image, /^ghcr\.io\/zerofs\/zerofs-csi@sha256:[0-9a-f]{64}$/);
        }
      }
    }
  });
}

Deno.test("production: every driver container has requests and a memory limit", async () => {
  for (const obj of await render("overlays/production")) {
    const pod = obj.spec?.template?.spec;
    if (!pod) continue;
    assert(pod.priorityClassName, `${obj.kind} ${obj.metadata.name} has no priority class`);
    for (const c of allContainers(pod)) {
      assert(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${c.name}: no requests`);
      assert(c.resources?.limits?.memory, `${c.name}: no memory limit`);
    }
  }
});

Deno.test("dev: the ConfigMap points at the in-cluster MinIO with the bucket the Job creates", async () => {
  const objects = await render("overlays/dev");
  const cm = find(objects, "ConfigMap", "zerofs-default");
  const settings = resolveSettings({ parameters: {}, configMap: cm.data });
  assert.equal(cm.data.awsEndpoint, "http://minio.zerofs.svc.cluster.local:9000");
  assert.equal(settings.awsAllowHTTP, true);
  find(objects, "Service", "minio");
  const job = find(objects, "Job", "minio-create-bucket");
  const bucket = new URL(cm.data.storageURL).host;
  assert.deepEqual(job.spec.template.spec.containers[0].args, [
    "mb",
    "--ignore-existing",
    `dev/${bucket}`,
  ]);
});
