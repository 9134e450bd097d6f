#!/usr/bin/env python3
"""Lints and renders the chart with helm and checks what comes out.

Usage, from anywhere:  python3 charts/planops/ci/render_test.py
The helm binary is $HELM, else the newest ~/.cache/planops-envtest/bin-*/helm,
else `helm` on PATH. Renders for Kubernetes $KUBE_VERSION (default 1.37.2, the
envtest version): a helm built without its Makefile's chartutil.k8sVersion*
ldflags assumes v1.20 and would refuse the chart's kubeVersion ">=1.30.0-0".
Needs PyYAML. Exit status 0 when every scenario passes.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import traceback
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent.parent
RELEASE, NAMESPACE = "planops", "planops-system"
KUBE_VERSION = os.environ.get("KUBE_VERSION", "1.37.2")
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
REPOSITORY = "ghcr.io/planops/planops"
KINDS = ("odooconnections", "exceptionrules", "supplierconnectors", "approvalpolicies")


def find_helm():
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    cached = sorted(glob.glob(os.path.expanduser("~/.cache/planops-envtest/bin-*/helm")))
    if cached:
        return cached[-1]
    found = shutil.which("helm")
    if not found:
        sys.exit("no helm binary: set HELM or build one (see README)")
    return found


HELM = find_helm()


def helm(*args):
    return subprocess.run([HELM, *args, "--kube-version", KUBE_VERSION], capture_output=True, text=True)


def render(*sets):
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for s in sets:
        args += ["--set", s]
    result = helm(*args)
    if result.returncode != 0:
        raise AssertionError(f"helm template {' '.join(sets)} failed:\n{result.stderr}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def render_fails(*sets):
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for s in sets:
        args += ["--set", s]
    result = helm(*args)
    if result.returncode == 0:
        raise AssertionError(f"helm template {' '.join(sets)} should have failed")
    return result.stderr


def find(docs, kind, name=None, namespace=None):
    return [
        d
        for d in docs
        if d["kind"] == kind
        and (name is None or d["metadata"]["name"] == name)
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]


def one(docs, kind, name=None, namespace=None):
    found = find(docs, kind, name, namespace)
    assert len(found) == 1, f"expected one {kind} {name or ''} in {namespace or 'any namespace'}, got {len(found)}"
    return found[0]


def env_of(deployment):
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def check_restricted(deployment):
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key), key
    assert all("hostPath" not in v for v in pod["volumes"]), "hostPath volume"
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert "ports" not in c or all("hostPort" not in p for p in c["ports"])


def rules_of(role):
    rules = {}
    for r in role["rules"]:
        rules.setdefault((tuple(r["apiGroups"]), tuple(r["resources"])), set()).update(r["verbs"])
    return rules


def test_lint():
    for sets in ([], ["watchNamespaces={a,b}"], ["gateway.deployment.enabled=true,networkPolicy.enabled=true"], ["serviceMonitor.enabled=true,networkPolicy.enabled=true,replicaCount=2"], ["crds.enabled=false"]):
        args = ["lint", str(CHART), "--strict", "--namespace", NAMESPACE]
        for s in sets:
            args += ["--set", s]
        result = helm(*args)
        assert result.returncode == 0, f"helm lint {sets}:\n{result.stdout}{result.stderr}"


def test_defaults():
    docs = render()
    dep = one(docs, "Deployment", "planops", NAMESPACE)
    check_restricted(dep)
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert dep["spec"]["replicas"] == 1
    assert container["args"] == ["operator"]
    assert container["image"] == f"{REPOSITORY}:{APP_VERSION}"
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == "planops"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    env = env_of(dep)
    assert env["PLANOPS_WATCH_NAMESPACES"] == ""
    assert env["PLANOPS_LISTEN"] == "0.0.0.0:8080"
    assert env["PLANOPS_LEADER_ELECTION"] == "true"
    assert env["PLANOPS_LEASE_NAME"] == "planops-leader"
    assert env["PLANOPS_LEASE_DURATION_SECONDS"] == "15"
    assert env["PLANOPS_CONCURRENCY"] == "8"
    assert env["PLANOPS_API_QPS"] == "100" and env["PLANOPS_API_BURST"] == "200"
    assert env["PLANOPS_LOG_FORMAT"] == "text" and env["RUST_LOG"] == "info"
    assert env["PLANOPS_ALLOW_OUTBOUND"] == "" and env["PLANOPS_SERVICE_CIDR"] == ""
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["PLANOPS_CACHE_DIR"] == "/var/cache/planops"
    # execution: CronJob runs the operator's own image as the scan ServiceAccount.
    assert env["PLANOPS_IMAGE"] == container["image"]
    assert env["PLANOPS_SCAN_SERVICE_ACCOUNT"] == "planops-scan"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/var/cache/planops"]]

    assert one(docs, "ServiceAccount", "planops", NAMESPACE)["automountServiceAccountToken"] is True
    cluster_role = one(docs, "ClusterRole", f"{NAMESPACE}-planops")
    rules = rules_of(cluster_role)
    assert rules[(("planops.io",), KINDS)] == {"get", "list", "watch", "patch", "update"}
    assert rules[(("planops.io",), tuple(f"{k}/status" for k in KINDS))] == {"get", "patch", "update"}
    assert rules[(("planops.io",), tuple(f"{k}/finalizers" for k in KINDS))] == {"update"}
    assert rules[(("events.k8s.io",), ("events",))] == {"create", "patch"}
    # create: the hook token Secret of a rule with events; never patch or delete.
    assert rules[(("",), ("secrets",))] == {"get", "list", "watch", "create"}
    assert rules[(("batch",), ("cronjobs",))] == {"get", "list", "watch", "create", "patch", "update", "delete"}
    # Pods only for the leader's own gateway label (patch), nothing else.
    roles = [r for r in find(docs, "ClusterRole") + find(docs, "Role") if r["metadata"]["name"] != "planops-gateway-pod"]
    all_resources = {res for role in roles for r in role["rules"] for res in r["resources"]}
    assert not all_resources & {"serviceaccounts", "roles", "rolebindings", "clusterroles", "pods", "*"}
    binding = one(docs, "ClusterRoleBinding", f"{NAMESPACE}-planops")
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "planops", "namespace": NAMESPACE}]

    lease_role = one(docs, "Role", "planops-leader-election", NAMESPACE)
    assert {tuple(sorted(r["verbs"])): r.get("resourceNames") for r in lease_role["rules"]} == {
        ("create",): None,
        ("get", "list", "patch", "update", "watch"): ["planops-leader"],
    }
    one(docs, "RoleBinding", "planops-leader-election", NAMESPACE)

    scan_sa = one(docs, "ServiceAccount", "planops-scan", NAMESPACE)
    assert scan_sa["automountServiceAccountToken"] is True
    # Exactly what `planops scan <namespace>/<rule>` does, nothing more.
    scan_rules = rules_of(one(docs, "Role", "planops-scan", NAMESPACE))
    assert scan_rules == {
        (("planops.io",), ("exceptionrules", "odooconnections")): {"get"},
        (("planops.io",), ("approvalpolicies",)): {"list", "patch"},
        (("planops.io",), ("exceptionrules/status",)): {"patch"},
        (("",), ("secrets",)): {"get"},
        (("",), ("configmaps",)): {"get", "create", "patch"},
        (("events.k8s.io",), ("events",)): {"create"},
    }, scan_rules
    scan_binding = one(docs, "RoleBinding", "planops-scan", NAMESPACE)
    assert scan_binding["subjects"] == [{"kind": "ServiceAccount", "name": "planops-scan", "namespace": NAMESPACE}]

    service = one(docs, "Service", "planops", NAMESPACE)
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    # Webhooks reach only the leader, which labels its own Pod.
    gateway = one(docs, "Service", "planops-gateway", NAMESPACE)
    assert gateway["spec"]["selector"] == {**dep["spec"]["selector"]["matchLabels"], "planops.io/gateway": "active"}
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PLANOPS_LABEL_LEADER_POD"] == "true"
    assert rules_of(one(docs, "Role", "planops-gateway-pod", NAMESPACE)) == {(("",), ("pods",)): {"patch"}}

    crds = find(docs, "CustomResourceDefinition")
    assert sorted(c["metadata"]["name"] for c in crds) == sorted(f"{k}.planops.io" for k in KINDS)
    for crd in crds:
        annotations = crd["metadata"]["annotations"]
        assert annotations["helm.sh/resource-policy"] == "keep"
        assert annotations["argocd.argoproj.io/sync-options"] == "Prune=false"
        assert "status" not in crd
    for kind in ("PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "Ingress", "PersistentVolumeClaim"):
        assert not find(docs, kind), kind


def test_tenant_mode():
    docs = render("watchNamespaces={a,b}")
    assert not find(docs, "ClusterRole") and not find(docs, "ClusterRoleBinding")
    for ns in ("a", "b"):
        role = one(docs, "Role", "planops", ns)
        assert rules_of(role)[(("",), ("secrets",))] == {"get", "list", "watch", "create"}
        binding = one(docs, "RoleBinding", "planops", ns)
        assert binding["subjects"][0]["namespace"] == NAMESPACE
        one(docs, "ServiceAccount", "planops-scan", ns)
        one(docs, "Role", "planops-scan", ns)
    assert not find(docs, "ServiceAccount", "planops-scan", NAMESPACE)
    one(docs, "Role", "planops-leader-election", NAMESPACE)
    assert env_of(one(docs, "Deployment"))["PLANOPS_WATCH_NAMESPACES"] == "a,b"


def test_ha_monitoring_network_policy():
    docs = render("serviceMonitor.enabled=true,networkPolicy.enabled=true,replicaCount=2")
    dep = one(docs, "Deployment")
    assert dep["spec"]["replicas"] == 2
    pdb = one(docs, "PodDisruptionBudget", "planops", NAMESPACE)
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    monitor = one(docs, "ServiceMonitor", "planops", NAMESPACE)
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    policy = one(docs, "NetworkPolicy", "planops", NAMESPACE)["spec"]
    assert policy["podSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert len(policy["ingress"][0]["from"]) == 2
    dns, api = policy["egress"]
    assert {p["protocol"] for p in dns["ports"]} == {"UDP", "TCP"}
    assert "to" not in api and [p["port"] for p in api["ports"]] == [443, 6443]


def test_network_policy_destinations():
    docs = render(
        "networkPolicy.enabled=true",
        "networkPolicy.egress.apiServer.cidrs={10.0.0.1/32}",
        "networkPolicy.egress.odoo[0].cidr=203.0.113.10/32",
        "networkPolicy.egress.odoo[0].ports={443,8069}",
        "networkPolicy.egress.odoo[1].cidr=198.51.100.0/24",
    )
    egress = one(docs, "NetworkPolicy")["spec"]["egress"]
    assert egress[1]["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    assert egress[2] == {"to": [{"ipBlock": {"cidr": "203.0.113.10/32"}}], "ports": [{"port": 443, "protocol": "TCP"}, {"port": 8069, "protocol": "TCP"}]}
    assert egress[3] == {"to": [{"ipBlock": {"cidr": "198.51.100.0/24"}}]}


def test_crds_disabled_or_not_kept():
    assert not find(render("crds.enabled=false"), "CustomResourceDefinition")
    for crd in find(render("crds.keep=false"), "CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})


def test_ingress_exposes_only_hooks():
    docs = render("ingress.enabled=true", "ingress.hosts={hooks.example.com}")
    rule = one(docs, "Ingress")["spec"]["rules"][0]
    assert rule["host"] == "hooks.example.com"
    assert [p["path"] for p in rule["http"]["paths"]] == ["/hooks"]
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "planops-gateway"


def test_gateway_deployment():
    docs = render("gateway.deployment.enabled=true", "networkPolicy.enabled=true", "ingress.enabled=true")
    operator = one(docs, "Deployment", "planops", NAMESPACE)
    gateway = one(docs, "Deployment", "planops-gateway", NAMESPACE)
    check_restricted(gateway)
    assert gateway["spec"]["replicas"] == 2
    pod = gateway["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["gateway"]
    assert pod["serviceAccountName"] == "planops-gateway"
    env = env_of(gateway)
    assert env["PLANOPS_FORWARD_TO"] == f"http://planops-leader.{NAMESPACE}.svc:8080"
    assert env["PLANOPS_HINT_RETRY_SECONDS"] == "120"
    selector = gateway["spec"]["selector"]["matchLabels"]
    # Two Deployments must never select each other's pods.
    assert selector["app.kubernetes.io/component"] == "gateway"
    assert operator["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    # Webhooks reach the replicas; the replicas reach the leader.
    assert one(docs, "Service", "planops-gateway", NAMESPACE)["spec"]["selector"] == selector
    leader = one(docs, "Service", "planops-leader", NAMESPACE)["spec"]["selector"]
    assert leader["planops.io/gateway"] == "active"
    assert leader["app.kubernetes.io/component"] == "operator"
    assert one(docs, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "planops-gateway"
    # Read-only: the routes' resources and their Secrets, nothing else.
    role = one(docs, "ClusterRole", f"{NAMESPACE}-planops-gateway")
    assert rules_of(role) == {
        (("planops.io",), ("exceptionrules", "supplierconnectors", "approvalpolicies")): {"get", "list", "watch"},
        (("",), ("secrets",)): {"get", "list", "watch"},
    }
    binding = one(docs, "ClusterRoleBinding", f"{NAMESPACE}-planops-gateway")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "planops-gateway", "namespace": NAMESPACE}]
    assert one(docs, "PodDisruptionBudget", "planops-gateway", NAMESPACE)["spec"]["selector"]["matchLabels"] == selector
    policy = one(docs, "NetworkPolicy", "planops", NAMESPACE)["spec"]
    assert {"podSelector": {"matchLabels": selector}} in policy["ingress"][-1]["from"]
    # Tenant mode: Roles in the watched namespaces only.
    docs = render("gateway.deployment.enabled=true", "watchNamespaces={a,b}")
    assert not find(docs, "ClusterRole")
    for ns in ("a", "b"):
        one(docs, "Role", "planops-gateway", ns)
        one(docs, "RoleBinding", "planops-gateway", ns)
    assert env_of(one(docs, "Deployment", "planops-gateway"))["PLANOPS_WATCH_NAMESPACES"] == "a,b"
    # Disabled (the default): the leader serves webhooks, no -leader Service.
    docs = render()
    assert not find(docs, "Deployment", "planops-gateway")
    assert not find(docs, "Service", "planops-leader")
    assert one(docs, "Service", "planops-gateway", NAMESPACE)["spec"]["selector"]["planops.io/gateway"] == "active"


def test_persistent_cache_and_spread():
    docs = render(
        "cache.persistence.enabled=true",
        "topologySpreadConstraints[0].maxSkew=1",
        "topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
        "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
    )
    pvc = one(docs, "PersistentVolumeClaim", "planops-cache", NAMESPACE)
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    cache = next(v for v in pod["volumes"] if v["name"] == "cache")
    assert cache["persistentVolumeClaim"]["claimName"] == "planops-cache"
    # The claim is where the operator's history cache lives (HistoryCache::from_env).
    container = pod["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["cache"] == env_of(one(docs, "Deployment"))["PLANOPS_CACHE_DIR"]
    spread = pod["topologySpreadConstraints"][0]
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == RELEASE
    assert spread["maxSkew"] == 1


def test_scan_service_account_name():
    docs = render("scanServiceAccount.name=scanner", "image.tag=1.2.3")
    one(docs, "ServiceAccount", "scanner", NAMESPACE)
    one(docs, "Role", "scanner", NAMESPACE)
    binding = one(docs, "RoleBinding", "scanner", NAMESPACE)
    assert binding["roleRef"]["name"] == "scanner"
    env = env_of(one(docs, "Deployment"))
    assert env["PLANOPS_SCAN_SERVICE_ACCOUNT"] == "scanner"
    assert env["PLANOPS_IMAGE"] == "ghcr.io/planops/planops:1.2.3"


def images(docs):
    """Every image reference the render makes: each container's, and the one
    the operator gives the scan CronJobs (PLANOPS_IMAGE)."""
    refs = {}
    for dep in find(docs, "Deployment"):
        name = dep["metadata"]["name"]
        for c in dep["spec"]["template"]["spec"]["containers"]:
            refs[f"{name}/{c['name']}"] = c["image"]
        if "PLANOPS_IMAGE" in env_of(dep):
            refs[f"{name}/PLANOPS_IMAGE"] = env_of(dep)["PLANOPS_IMAGE"]
    return refs


def test_image_tag_follows_app_version():
    # The tag scripts/image.sh and the release workflow give the image is the
    # chart's appVersion, which is the operator's crate version.
    cargo = tomllib.loads((CHART.parent.parent / "Cargo.toml").read_text())
    assert APP_VERSION == cargo["workspace"]["package"]["version"], "appVersion != the Cargo version"
    docs = render("gateway.deployment.enabled=true")
    refs = images(docs)
    assert set(refs) == {"planops/operator", "planops/PLANOPS_IMAGE", "planops-gateway/gateway"}, refs
    assert set(refs.values()) == {f"{REPOSITORY}:{APP_VERSION}"}, refs
    for dep in find(docs, "Deployment"):
        assert dep["metadata"]["labels"]["app.kubernetes.io/version"] == APP_VERSION

    docs = render("gateway.deployment.enabled=true", "image.tag=1.2.3-rc.1")
    assert set(images(docs).values()) == {f"{REPOSITORY}:1.2.3-rc.1"}
    assert one(docs, "Deployment", "planops")["metadata"]["labels"]["app.kubernetes.io/version"] == "1.2.3-rc.1"

    digest = "sha256:" + "ab" * 32
    docs = render("gateway.deployment.enabled=true", f"image.digest={digest}", "image.repository=registry.example/planops")
    assert set(images(docs).values()) == {f"registry.example/planops:{APP_VERSION}@{digest}"}


def test_outbound_policy():
    docs = render("outbound.allow={10.96.40.12/32,127.0.0.1}", "outbound.serviceCIDRs={10.96.0.0/12,fd00::/108}")
    env = env_of(one(docs, "Deployment", "planops"))
    assert env["PLANOPS_ALLOW_OUTBOUND"] == "10.96.40.12/32,127.0.0.1"
    assert env["PLANOPS_SERVICE_CIDR"] == "10.96.0.0/12,fd00::/108"
    assert "outbound" in render_fails("outbound.allow={example.com}")


def test_shards():
    assert env_of(one(render(), "Deployment"))["PLANOPS_SHARDS"] == "1"
    docs = render("shards=4,replicaCount=3")
    dep = one(docs, "Deployment")
    assert dep["spec"]["replicas"] == 3
    assert env_of(dep)["PLANOPS_SHARDS"] == "4"
    lease_role = one(docs, "Role", "planops-leader-election", NAMESPACE)
    assert {tuple(sorted(r["verbs"])): r.get("resourceNames") for r in lease_role["rules"]} == {
        ("create",): None,
        ("get", "list", "patch", "update", "watch"): ["planops-leader"],
        ("delete", "get", "list", "update"): None,
    }


def test_rejected_values():
    assert "leaderElection" in render_fails("replicaCount=2", "leaderElection.enabled=false")
    assert "leaderElection" in render_fails("shards=2", "leaderElection.enabled=false")
    assert "shards" in render_fails("shards=0")
    assert "format" in render_fails("logging.format=xml")
    assert "additional properties" in render_fails("unknownValue=1").lower()
    assert "watchNamespaces" in render_fails("watchNamespaces={Not_A_Namespace}")


def test_notes_render():
    # `helm template` skips NOTES.txt and `helm install --dry-run` needs a
    # cluster, so render it through a probe template in a scratch copy.
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "planops"
        shutil.copytree(CHART, copy)
        (copy / "templates" / "zz-notes-probe.yaml").write_text(
            'notes: {{ include "planops/templates/NOTES.txt" . | toJson }}\n'
        )

        def notes(*sets):
            args = ["template", RELEASE, str(copy), "--namespace", NAMESPACE, "--show-only", "templates/zz-notes-probe.yaml"]
            for s in sets:
                args += ["--set", s]
            result = helm(*args)
            assert result.returncode == 0, result.stderr
            return yaml.safe_load(result.stdout)["notes"]

        default = notes()
        assert "all namespaces (ClusterRole)" in default and "kept on `helm uninstall`" in default
        assert "WARNING" not in default and "NOTE:" not in default
        tenant = notes("watchNamespaces={a,b}", "crds.enabled=false")
        assert "namespaces a, b" in tenant and "apply the CRDs yourself" in tenant
        risky = notes("replicaCount=2", "cache.persistence.enabled=true", "networkPolicy.enabled=true")
        assert "ReadWriteMany" in risky and "open to any address" in risky and "cannot reach Odoo" in risky


def main():
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_")]
    failed = 0
    for name, fn in tests:
        try:
            fn()
            print(f"ok   {name}")
        except AssertionError:
            failed += 1
            print(f"FAIL {name}:\n{traceback.format_exc(limit=-1)}")
    print(f"{len(tests)} scenarios, {failed} failed (helm: {HELM})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
