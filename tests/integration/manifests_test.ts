/**
 * The kustomize manifests: they render, every object matches the Kubernetes OpenAPI
 * schema (offline, from the `kubernetes-models` package: types, enums and required
 * fields through its validators, unknown fields through TypeScript's excess-property
 * check against its interfaces), and the driver-specific promises hold: RBAC, the
 * CSIDriver, mount propagation, StorageClass/ConfigMap keys the driver accepts.
 */

import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";
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
import { ValidatingAdmissionPolicy } from "kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy";
import { ValidatingAdmissionPolicyBinding } from "kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding";
import { StorageClass } from "kubernetes-models/storage.k8s.io/v1/StorageClass";
import { type KubeObject, renderObjects } from "../helpers/manifests.ts";
import {
  type Grant,
  grantAllows,
  grantsFromManifests,
  type RequestAttributes,
} from "../helpers/rbac_rules.ts";
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
/** `a+b`: overlay `a` with component `b` (rendered through a kustomization of the test's). */
const USERSPACE = "overlays/dev+components/userspace-attach";
const KUSTOMIZATIONS = ["base", "overlays/dev", "overlays/production", USERSPACE];
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
  "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy": {
    model: ValidatingAdmissionPolicy,
    module: "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy",
  },
  "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding": {
    model: ValidatingAdmissionPolicyBinding,
    module: "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding",
  },
  "storage.k8s.io/v1/StorageClass": {
    model: StorageClass,
    module: "storage.k8s.io/v1/StorageClass",
  },
};

const rendered = new Map<string, KubeObject[]>();
async function render(kustomization: string): Promise<KubeObject[]> {
  let objects = rendered.get(kustomization);
  if (!objects) {
    objects = await renderWithComponents(kustomization);
    rendered.set(kustomization, objects);
  }
  return objects;
}

async function renderWithComponents(kustomization: string): Promise<KubeObject[]> {
  const [resource, ...components] = kustomization.split("+");
  if (components.length === 0) return await renderObjects(join(ROOT, "manifests", resource));
  const dir = await Deno.makeTempDir({ prefix: "kustomization-" });
  try {
    // kustomize refuses absolute paths here.
    const from = (path: string) => relative(dir, join(ROOT, "manifests", path));
    await Deno.writeTextFile(
      join(dir, "kustomization.yaml"),
      JSON.stringify({
        apiVersion: "kustomize.config.k8s.io/v1beta1",
        kind: "Kustomization",
        resources: [from(resource)],
        components: components.map(from),
      }),
    );
    return await renderObjects(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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

  Deno.test(`${k}: the node agent reaches no Secret: not through RBAC, nor through a pod`, async () => {
    const objects = await render(k);
    const grants = grantsFromManifests(objects);
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
    assert(!allowed(NODE_USER, get("default", "pods", "create")), "node creates pods anywhere");
    assert(!allowed(NODE_USER, get("default", "pods")), "node reads workload pods");
    assert(allowed(NODE_USER, get("zerofs", "configmaps")));
    assert(!allowed(NODE_USER, get("zerofs", "configmaps", "update")));
    // A pod reads any Secret of its namespace (secretKeyRef, volumes) and runs as any of
    // its ServiceAccounts: only the node agent may start one, only in zerofs, and only
    // through the admission policies (tests/e2e/node_pod_policy_test.ts shows on a real
    // API server what they admit and refuse).
    assert.deepEqual(podStarters(grants), [`${NODE_USER} create pods in zerofs`]);
    assert.deepEqual(nodePodPolicyProblems(objects), []);
  });
}

/** Workload kinds whose create (or update) makes the cluster start pods. */
const POD_STARTING = [
  ["", "pods"],
  ["", "pods/ephemeralcontainers"],
  ["", "replicationcontrollers"],
  ["apps", "deployments"],
  ["apps", "daemonsets"],
  ["apps", "statefulsets"],
  ["apps", "replicasets"],
  ["batch", "jobs"],
  ["batch", "cronjobs"],
];

/** "<user> <verb> <resource> in <namespace>" for every grant that starts a pod. */
function podStarters(grants: Map<string, Grant[]>): string[] {
  const found: string[] = [];
  for (const [user, userGrants] of grants) {
    for (const [group, resource] of POD_STARTING) {
      for (const verb of ["create", "update", "patch"]) {
        for (const namespace of ["zerofs", "default", "kube-system"]) {
          const req = { verb, group, resource, namespace, name: "x" };
          if (userGrants.some((g) => grantAllows(g, req))) {
            found.push(`${user} ${verb} ${resource} in ${namespace}`);
          }
        }
      }
    }
  }
  return found;
}

/** The users a policy's `matchConditions` select, for the form the policy file uses. */
function policySelects(policy: KubeObject, user: string): boolean {
  const conditions = policy.spec.matchConditions ?? [];
  assert.equal(conditions.length, 1, `${policy.metadata.name}: one match condition expected`);
  const text = String(conditions[0].expression);
  const prefix = text.match(/request\.userInfo\.username\.startsWith\('([^']*)'\)/)?.[1];
  const suffix = text.match(/request\.userInfo\.username\.endsWith\('([^']*)'\)/)?.[1];
  assert(prefix !== undefined && suffix !== undefined, `${policy.metadata.name}: ${text}`);
  assert.equal(
    text.replace(/\s+/g, " "),
    `request.userInfo.username.startsWith('${prefix}') && ` +
      `request.userInfo.username.endsWith('${suffix}')`,
  );
  return user.startsWith(prefix) && user.endsWith(suffix);
}

const NODE_POD_PARAMS = "zerofs-csi-node-pods";

/**
 * Every way the node agent's pod grants escape the admission policies of
 * node-pod-policy.yaml: each policy exists, fails closed, selects the node agent
 * (and every other account that may create or delete pods), and is bound with
 * Deny; the create policy's parameters exist in zerofs and allow what the shipped
 * settings and the DaemonSet use.
 */
function nodePodPolicyProblems(objects: KubeObject[]): string[] {
  const problems: string[] = [];
  const check = (ok: boolean, problem: string) => ok || problems.push(problem);
  const grants = grantsFromManifests(objects);
  // Where the node agent may create or delete pods (podStarters keeps that to zerofs).
  const podNamespaces = ["zerofs"];
  const podUsers = (verb: string) =>
    [...grants].filter(([, gs]) =>
      gs.some((g) =>
        grantAllows(g, { verb, group: "", resource: "pods", namespace: "zerofs", name: "x" })
      )
    ).map(([user]) => user);
  for (
    const [name, operation, verb] of [
      ["zerofs-csi-node-pod-create", "CREATE", "create"],
      ["zerofs-csi-node-pod-delete", "DELETE", "delete"],
    ]
  ) {
    const policy = objects.find((o) =>
      o.kind === "ValidatingAdmissionPolicy" && o.metadata.name === name
    );
    const binding = objects.find((o) =>
      o.kind === "ValidatingAdmissionPolicyBinding" && o.spec.policyName === name
    );
    if (!policy || !binding) {
      problems.push(`${name}: ${policy ? "no binding" : "no policy"}`);
      continue;
    }
    check(policy.spec.failurePolicy === "Fail", `${name}: failurePolicy is not Fail`);
    const rules = policy.spec.matchConstraints?.resourceRules ?? [];
    check(
      rules.some((r: KubeObject) =>
        r.apiGroups?.includes("") && r.resources?.includes("pods") &&
        r.operations?.includes(operation)
      ),
      `${name}: does not match ${operation} of pods`,
    );
    for (const user of podUsers(verb)) {
      check(policySelects(policy, user), `${name}: does not apply to ${user}`);
    }
    check(!policySelects(policy, CONTROLLER_USER), `${name}: applies to the controller`);
    check(
      JSON.stringify(binding.spec.validationActions) === '["Deny"]',
      `${name}: binding does not Deny`,
    );
    const scope = binding.spec.matchResources;
    check(
      Object.keys(scope ?? {}).every((key) => key === "namespaceSelector") &&
        Object.keys(scope?.namespaceSelector ?? {}).every((key) => key === "matchLabels"),
      `${name}: binding narrows what the policy matches beyond namespace labels`,
    );
    const selected = Object.entries(scope?.namespaceSelector?.matchLabels ?? {});
    for (const ns of podNamespaces) {
      const labels = objects.find((o) => o.kind === "Namespace" && o.metadata.name === ns)
        ?.metadata.labels ?? {};
      check(
        selected.every(([key, value]) => labels[key] === value),
        `${name}: binding skips namespace ${ns}`,
      );
    }
    if (operation === "CREATE") {
      // Parameters are looked up before matchConditions: a binding for every namespace
      // would refuse everyone's pods wherever the ConfigMap is absent.
      check(selected.length > 0, `${name}: binding applies in namespaces without its parameters`);
      check(
        binding.spec.paramRef?.name === NODE_POD_PARAMS &&
          binding.spec.paramRef?.namespace === undefined &&
          binding.spec.paramRef?.parameterNotFoundAction === "Deny",
        `${name}: paramRef is not ${NODE_POD_PARAMS} of the pod's namespace, denying without it`,
      );
    }
  }
  const params = objects.find((o) =>
    o.kind === "ConfigMap" && o.metadata.name === NODE_POD_PARAMS &&
    o.metadata.namespace === "zerofs"
  );
  if (!params) return [...problems, `no ConfigMap zerofs/${NODE_POD_PARAMS}`];
  const list = (key: string) => String(params.data?.[key] ?? "").split(" ");
  for (const sc of objects.filter((o) => o.kind === "StorageClass")) {
    const cm = objects.find((o) =>
      o.kind === "ConfigMap" && o.metadata.name === sc.parameters?.configMapName
    );
    const settings = resolveSettings({ parameters: sc.parameters, configMap: cm?.data });
    const where = `StorageClass ${sc.metadata.name}`;
    check(list("zerofsImages").includes(settings.zerofsImage), `${where}: image not allowed`);
    check(list("envoyImages").includes(settings.envoyImage), `${where}: Envoy image not allowed`);
    check(
      list("envoyConfigMaps").includes(settings.envoyConfigMapRef),
      `${where}: Envoy ConfigMap not allowed`,
    );
    for (
      const secret of [settings.encryptionPasswordSecretName, settings.awsCredentialsSecretName]
    ) {
      if (secret) check(list("secrets").includes(secret), `${where}: Secret ${secret} not allowed`);
    }
  }
  const agent = find(objects, "DaemonSet", "zerofs-csi-node").spec.template.spec.containers
    .find((c: KubeObject) => c.name === "zerofs-csi");
  const stateDir = agent.args[agent.args.indexOf("--state-dir") + 1];
  check(params.data?.stateDir === stateDir, `stateDir ${params.data?.stateDir} is not ${stateDir}`);
  return problems;
}

Deno.test("the node pod policy check catches each gap", async () => {
  const base = await render("base");
  const mutated = (change: (objects: KubeObject[]) => KubeObject[] | void) => {
    const objects = structuredClone(base);
    return nodePodPolicyProblems(change(objects) ?? objects);
  };
  const byName = (objects: KubeObject[], kind: string, name: string) =>
    objects.find((o) => o.kind === kind && o.metadata.name === name)!;
  const cases: Array<[string[], string]> = [
    [
      mutated((o) =>
        o.filter((x) =>
          !(x.kind === "ValidatingAdmissionPolicyBinding" &&
            x.metadata.name === "zerofs-csi-node-pod-create")
        )
      ),
      "zerofs-csi-node-pod-create: no binding",
    ],
    [
      mutated((o) => {
        byName(o, "ValidatingAdmissionPolicy", "zerofs-csi-node-pod-delete").spec
          .matchConditions[0].expression =
            "request.userInfo.username.startsWith('system:serviceaccount:') && " +
            "request.userInfo.username.endsWith(':zerofs-node')";
      }),
      `zerofs-csi-node-pod-delete: does not apply to ${NODE_USER}`,
    ],
    [
      mutated((o) => {
        byName(o, "ValidatingAdmissionPolicyBinding", "zerofs-csi-node-pod-create").spec
          .validationActions = ["Audit"];
      }),
      "zerofs-csi-node-pod-create: binding does not Deny",
    ],
    [
      mutated((o) => {
        delete byName(o, "ValidatingAdmissionPolicyBinding", "zerofs-csi-node-pod-create").spec
          .matchResources;
      }),
      "zerofs-csi-node-pod-create: binding applies in namespaces without its parameters",
    ],
    [
      mutated((o) => {
        byName(o, "Namespace", "zerofs").metadata.labels = {};
      }),
      "zerofs-csi-node-pod-create: binding skips namespace zerofs",
    ],
    [
      mutated((o) => {
        byName(o, "ConfigMap", "zerofs-default").data.zerofsImage = "ghcr.io/barre/zerofs:0.17.0";
      }),
      "StorageClass zerofs: image not allowed",
    ],
    [
      mutated((o) => {
        byName(o, "ConfigMap", NODE_POD_PARAMS).data.stateDir = "/var/lib/other";
      }),
      "stateDir /var/lib/other is not /var/lib/zerofs-csi",
    ],
  ];
  for (const [problems, expected] of cases) {
    assert(problems.includes(expected), `expected "${expected}" in ${JSON.stringify(problems)}`);
  }
});

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
  assert.deepEqual(init.securityContext?.capabilities?.add, ["SYS_MODULE"]);
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
          assert.match(
            c.image,
            /^ghcr\.io\/zerofs\/zerofs-csi(-controller)?@sha256:[0-9a-f]{64}$/,
          );
        }
      }
    }
  });
}

/** The container that stays privileged: the node agent attaches NBD devices and mounts. */
const PRIVILEGED = { kind: "DaemonSet", name: "zerofs-csi-node", container: "zerofs-csi" };
/**
 * Capabilities a hardened container may add back after dropping ALL, with why:
 * loading the nbd module needs CAP_SYS_MODULE and nothing else.
 */
const ADDED_CAPABILITIES: Record<string, string[]> = { "load-nbd": ["SYS_MODULE"] };

/** What a container runs with: its securityContext over its pod's (the container's wins). */
function effectiveSecurity(pod: KubeObject, c: KubeObject): KubeObject {
  const podLevel = pod.securityContext ?? {};
  const own = c.securityContext ?? {};
  return {
    ...own,
    runAsNonRoot: own.runAsNonRoot ?? podLevel.runAsNonRoot,
    runAsUser: own.runAsUser ?? podLevel.runAsUser,
    seccompProfile: own.seccompProfile ?? podLevel.seccompProfile,
  };
}

/** Every container of every workload, with its effective security settings. */
function workloadContainers(objects: KubeObject[]) {
  return objects.filter((o) => o.kind === "Deployment" || o.kind === "DaemonSet")
    .flatMap((o) =>
      allContainers(o.spec.template.spec).map((c) => ({
        workload: `${o.kind} ${o.metadata.name}`,
        kind: o.kind,
        owner: o.metadata.name,
        container: c,
        security: effectiveSecurity(o.spec.template.spec, c),
      }))
    );
}

/**
 * Every way the driver's workloads miss the hardening: only the node agent is
 * privileged; every other container refuses privilege escalation, has a read-only
 * root filesystem, drops ALL capabilities (adding back only ADDED_CAPABILITIES),
 * uses seccomp RuntimeDefault; the controller pod runs as one fixed non-root uid
 * and writes only to emptyDirs.
 */
function hardeningProblems(objects: KubeObject[], alsoPrivileged: string[] = []): string[] {
  const problems: string[] = [];
  const check = (ok: boolean, problem: string) => ok || problems.push(problem);
  const containers = workloadContainers(objects);
  const privileged = containers.filter((w) => w.security.privileged === true)
    .map((w) => `${w.workload}/${w.container.name}`);
  const agent = `${PRIVILEGED.kind} ${PRIVILEGED.name}/${PRIVILEGED.container}`;
  const allowed = [
    agent,
    ...alsoPrivileged.map((c) => `${PRIVILEGED.kind} ${PRIVILEGED.name}/${c}`),
  ];
  check(
    JSON.stringify(privileged.sort()) === JSON.stringify(allowed.sort()),
    `privileged: ${privileged.join(", ")}`,
  );
  const driverWorkloads = new Set(["zerofs-csi-controller", "zerofs-csi-node"]);
  const hardened = containers.filter((w) =>
    driverWorkloads.has(w.owner) && !allowed.includes(`${w.workload}/${w.container.name}`)
  );
  check(hardened.length >= 7, `only ${hardened.length} driver containers besides the agent`);
  for (const { workload, container, security, kind } of hardened) {
    const where = `${workload}/${container.name}`;
    check(security.privileged !== true, `${where}: privileged`);
    check(security.allowPrivilegeEscalation === false, `${where}: allowPrivilegeEscalation`);
    check(security.readOnlyRootFilesystem === true, `${where}: readOnlyRootFilesystem`);
    check(
      JSON.stringify(security.capabilities?.drop) === '["ALL"]',
      `${where}: does not drop ALL capabilities`,
    );
    const added = JSON.stringify(security.capabilities?.add ?? []);
    check(
      added === JSON.stringify(ADDED_CAPABILITIES[container.name] ?? []),
      `${where}: adds capabilities ${added}`,
    );
    check(security.seccompProfile?.type === "RuntimeDefault", `${where}: seccomp`);
    if (kind === "Deployment") {
      // The controller pod touches nothing of the host: no container needs root.
      check(security.runAsNonRoot === true, `${where}: runAsNonRoot`);
      check(Number.isInteger(security.runAsUser) && security.runAsUser > 0, `${where}: uid`);
    }
  }
  // One fixed uid for the controller pod, so the sidecars can use the socket the
  // driver creates; whatever they must write is an emptyDir.
  const deploy = find(objects, "Deployment", "zerofs-csi-controller");
  const pod = deploy.spec.template.spec;
  const uids = new Set(pod.containers.map((c: KubeObject) => effectiveSecurity(pod, c).runAsUser));
  check(uids.size === 1, `controller containers run as ${[...uids].join(", ")}`);
  const volumes = new Map(pod.volumes.map((v: KubeObject) => [v.name, v]));
  for (const c of pod.containers) {
    for (const m of c.volumeMounts ?? []) {
      check(
        m.readOnly === true || Boolean((volumes.get(m.name) as KubeObject)?.emptyDir),
        `${c.name}: writable mount ${m.mountPath} is not an emptyDir`,
      );
    }
  }
  return problems;
}

for (const k of KUSTOMIZATIONS) {
  Deno.test(`${k}: every container but the node agent is hardened`, async () => {
    // The userspace attach's keeper mounts FUSE for the agent: privileged (see the component).
    const keeper = k === USERSPACE ? ["process-keeper"] : [];
    assert.deepEqual(hardeningProblems(await render(k), keeper), []);
  });
}

Deno.test("the hardening check catches each missing setting", async () => {
  const base = await render("base");
  const mutated = (
    kind: string,
    name: string,
    container: string,
    change: (sc: KubeObject, c: KubeObject) => void,
  ) => {
    const objects = structuredClone(base);
    const c = allContainers(find(objects, kind, name).spec.template.spec)
      .find((c: KubeObject) => c.name === container);
    change(c.securityContext, c);
    return hardeningProblems(objects);
  };
  const ctl = "zerofs-csi-controller";
  const node = "zerofs-csi-node";
  const cases: Array<[string[], string]> = [
    [
      mutated("Deployment", ctl, "csi-attacher", (sc) => delete sc.readOnlyRootFilesystem),
      "Deployment zerofs-csi-controller/csi-attacher: readOnlyRootFilesystem",
    ],
    [
      mutated("Deployment", ctl, "zerofs-csi", (sc) => sc.capabilities.drop = ["NET_RAW"]),
      "Deployment zerofs-csi-controller/zerofs-csi: does not drop ALL capabilities",
    ],
    [
      mutated("Deployment", ctl, "csi-resizer", (sc) => sc.runAsNonRoot = false),
      "Deployment zerofs-csi-controller/csi-resizer: runAsNonRoot",
    ],
    [
      mutated("DaemonSet", node, "liveness-probe", (sc) => sc.allowPrivilegeEscalation = true),
      "DaemonSet zerofs-csi-node/liveness-probe: allowPrivilegeEscalation",
    ],
    [
      mutated("DaemonSet", node, "node-driver-registrar", (sc) => delete sc.seccompProfile),
      "DaemonSet zerofs-csi-node/node-driver-registrar: seccomp",
    ],
    [
      mutated("DaemonSet", node, "load-nbd", (sc) => sc.capabilities.add.push("SYS_ADMIN")),
      'DaemonSet zerofs-csi-node/load-nbd: adds capabilities ["SYS_MODULE","SYS_ADMIN"]',
    ],
    [
      mutated("DaemonSet", node, "load-nbd", (_, c) => c.securityContext = { privileged: true }),
      "privileged: DaemonSet zerofs-csi-node/load-nbd, DaemonSet zerofs-csi-node/zerofs-csi",
    ],
    [
      mutated(
        "Deployment",
        ctl,
        "csi-provisioner",
        (_, c) => c.volumeMounts.push({ name: "host", mountPath: "/host" }),
      ),
      "csi-provisioner: writable mount /host is not an emptyDir",
    ],
  ];
  for (const [problems, expected] of cases) {
    assert(problems.includes(expected), `expected "${expected}" in ${JSON.stringify(problems)}`);
  }
});

/** The instructions of each named stage of the Dockerfile (`FROM … AS <name>`). */
function dockerfileStages(text: string): Map<string, string[]> {
  const stages = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim())) {
    if (line === "" || line.startsWith("#")) continue;
    const from = line.match(/^FROM\s+\S+(?:\s+AS\s+(\S+))?$/i);
    if (from) stages.set(from[1] ?? `#${stages.size}`, current = []);
    else current?.push(line);
  }
  return stages;
}

Deno.test("Dockerfile: each image runs its own binary as the user its workload declares", async () => {
  const stages = dockerfileStages(await Deno.readTextFile(join(ROOT, "Dockerfile")));
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const objects = await render("base");
  const images = [
    { stage: "controller", kind: "Deployment", name: "zerofs-csi-controller", task: "controller" },
    { stage: "node", kind: "DaemonSet", name: "zerofs-csi-node", task: "node" },
  ];
  for (const { stage, kind, name, task } of images) {
    const lines = stages.get(stage);
    assert(lines, `the Dockerfile has no stage "${stage}"`);
    const output = String(config.tasks[`compile:${task}`]).match(/--output\s+(\S+)/)?.[1];
    assert(output, `compile:${task} names no --output`);
    const binary = output.split("/").pop();
    const entrypoint = lines.find((l) => l.startsWith("ENTRYPOINT"));
    assert.equal(entrypoint, `ENTRYPOINT ["/usr/local/bin/${binary}"]`, `${stage} entrypoint`);
    const user = lines.filter((l) => l.startsWith("USER ")).pop();
    const pod = find(objects, kind, name).spec.template.spec;
    const container = pod.containers.find((c: KubeObject) => c.name === "zerofs-csi");
    const security = effectiveSecurity(pod, container);
    const uid = security.runAsUser ?? 0;
    assert.equal(user, `USER ${uid}:${uid}`, `${stage} image user vs the ${kind}'s`);
    const image = `zerofs-csi${stage === "controller" ? "-controller" : ""}`;
    assert.match(container.image, new RegExp(`/${image}:`), `${kind} runs the ${stage} image`);
  }
});

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

Deno.test("userspace-attach component: the agent starts nbdfuse through the keeper, which outlives it", async () => {
  const objects = await render(USERSPACE);
  const spec = find(objects, "DaemonSet", "zerofs-csi-node").spec.template.spec;
  assert.equal(spec.shareProcessNamespace, true, "the agent checks the keeper's nbdfuse pids");
  assert.deepEqual((spec.initContainers ?? []).map((c: KubeObject) => c.name), []);
  const agent = spec.containers.find((c: KubeObject) => c.name === "zerofs-csi");
  const keeper = spec.containers.find((c: KubeObject) => c.name === "process-keeper");
  const flag = (c: KubeObject, name: string) => c.args[c.args.indexOf(name) + 1];
  assert.equal(flag(agent, "--attach-mode"), "userspace");
  const socket = flag(agent, "--process-keeper-socket");
  assert.equal(keeper.args[0], "process-keeper");
  assert.equal(flag(keeper, "--socket"), socket);
  assert.equal(flag(keeper, "--state-dir"), flag(agent, "--state-dir"));
  assert.equal(keeper.image, agent.image);
  for (const c of [agent, keeper]) {
    const mounts = new Map(c.volumeMounts.map((m: KubeObject) => [m.mountPath, m]));
    const keeperDir = mounts.get(dirname(socket)) as KubeObject;
    assert.equal(
      spec.volumes.find((v: KubeObject) => v.name === keeperDir?.name)?.emptyDir?.medium,
      "Memory",
      `${c.name}: the keeper's socket directory`,
    );
    const state = mounts.get(flag(agent, "--state-dir")) as KubeObject;
    assert.equal(state?.mountPropagation, "Bidirectional", `${c.name}: FUSE mounts must propagate`);
  }
});
