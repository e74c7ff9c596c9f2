#!/usr/bin/env python3
"""Write a JSON List of N realistic Flux objects (plus their CRDs and the
controller Deployments) for benchmarks:

    hack/gen-objects.py N > objects.json          # CRDs, Deployments and objects
    hack/gen-objects.py N --part crds             # only the CRDs (apply them first on a cluster)
    hack/gen-objects.py N --part objects          # only the Deployments and the Flux objects
    hack/gen-objects.py N --kinds                 # one line per kind: "<collection path> <objects>"

Objects are spread round-robin over 13 Flux kinds (sources, Kustomization, HelmRelease,
notification and image automation kinds) in 50 namespaces, with the statuses a real cluster
has (conditions, artifacts, Kustomization inventories, Helm release history, image scan
results), 1-3 KB each as JSON; the mean size per kind goes to stderr. Every 17th object is
failing and every 23rd suspended.

The CRDs have no status subresource, so that a real API server keeps the status given at
creation (`kubectl create`): use a throwaway cluster, not one with Flux installed.
"""
import argparse
import json
import sys
import uuid

# (group, version, kind, plural)
KINDS = [
    ("source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories"),
    ("source.toolkit.fluxcd.io", "v1", "OCIRepository", "ocirepositories"),
    ("source.toolkit.fluxcd.io", "v1", "HelmRepository", "helmrepositories"),
    ("source.toolkit.fluxcd.io", "v1", "HelmChart", "helmcharts"),
    ("source.toolkit.fluxcd.io", "v1", "Bucket", "buckets"),
    ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations"),
    ("helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases"),
    ("notification.toolkit.fluxcd.io", "v1beta3", "Alert", "alerts"),
    ("notification.toolkit.fluxcd.io", "v1beta3", "Provider", "providers"),
    ("notification.toolkit.fluxcd.io", "v1", "Receiver", "receivers"),
    ("image.toolkit.fluxcd.io", "v1", "ImageRepository", "imagerepositories"),
    ("image.toolkit.fluxcd.io", "v1", "ImagePolicy", "imagepolicies"),
    ("image.toolkit.fluxcd.io", "v1", "ImageUpdateAutomation", "imageupdateautomations"),
]
REV = "main@sha1:4d3b2a1c0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c"
T = "2026-11-20T10:00:00Z"


def crd(group, version, kind, plural):
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "labels": {
            "app.kubernetes.io/part-of": "flux", "app.kubernetes.io/version": "v2.7.3",
            "app.kubernetes.io/component": "controller"}},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": kind + "List"},
                 "versions": [{"name": version, "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}]},
    }


def deployment(name):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "flux-system", "generation": 1,
                     "labels": {"app.kubernetes.io/part-of": "flux", "app.kubernetes.io/component": name}},
        "spec": {"replicas": 1, "progressDeadlineSeconds": 600, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "manager", "image": f"ghcr.io/fluxcd/{name}:v1.7.3"}]}}},
        "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
                   "availableReplicas": 1,
                   "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                                  {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]},
    }


def artifact(kind, ns, name, i):
    return {"revision": REV, "size": 10240 + i, "digest": "sha256:" + "ab" * 32,
            "path": f"{kind.lower()}/{ns}/{name}/latest.tar.gz",
            "url": f"http://source-controller.flux-system.svc.cluster.local./{kind.lower()}/{ns}/{name}/latest.tar.gz",
            "lastUpdateTime": T}


def flux_object(i, group, version, kind):
    ns = f"team-{i % 50}"
    name = f"{kind.lower()}-{i}"
    failing = i % 17 == 0
    ready = {"type": "Ready", "status": "False" if failing else "True",
             "reason": "ReconciliationFailed" if failing else "Succeeded",
             "message": (f"{kind} reconciliation failed: context deadline exceeded while fetching" if failing
                         else f"Applied revision: {REV}"),
             "lastTransitionTime": T, "observedGeneration": 1}
    obj = {"apiVersion": f"{group}/{version}", "kind": kind,
           "metadata": {"name": name, "namespace": ns, "uid": str(uuid.UUID(int=i)), "generation": 1,
                        "labels": {"team": f"t{i % 7}", "kustomize.toolkit.fluxcd.io/name": "apps",
                                   "kustomize.toolkit.fluxcd.io/namespace": "flux-system"},
                        "finalizers": ["finalizers.fluxcd.io"],
                        "creationTimestamp": "2026-11-01T00:00:00Z"},
           "spec": {"interval": "5m", "suspend": i % 23 == 0},
           "status": {"observedGeneration": 1, "lastHandledReconcileAt": T, "conditions": [
               ready, {"type": "Reconciling", "status": "False", "reason": "Succeeded", "message": "",
                       "lastTransitionTime": T}]}}
    spec, status = obj["spec"], obj["status"]
    if group.startswith("source."):
        spec["timeout"] = "60s"
        if kind == "HelmChart":
            spec.update({"chart": "podinfo", "version": "6.x", "reconcileStrategy": "ChartVersion",
                         "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}})
        elif kind == "Bucket":
            spec.update({"bucketName": f"fleet-{ns}", "endpoint": "s3.eu-west-1.amazonaws.com",
                         "provider": "aws", "region": "eu-west-1"})
        else:
            spec["url"] = (f"oci://ghcr.io/example/{name}" if kind == "OCIRepository"
                           else f"https://github.com/example/{name}.git")
            spec["ref"] = {"branch": "main"}
        status["artifact"] = artifact(kind, ns, name, i)
        status["url"] = status["artifact"]["url"]
    if kind == "Kustomization":
        spec.update({"path": f"./apps/{name}", "prune": True, "wait": True, "timeout": "5m",
                     "sourceRef": {"kind": "GitRepository", "name": "fleet", "namespace": "flux-system"}})
        status["lastAppliedRevision"] = REV
        status["lastAttemptedRevision"] = REV
        status["inventory"] = {"entries": [{"id": f"{ns}_{name}-{j}_apps_Deployment", "v": "v1"}
                                           for j in range(8)]}
    if kind == "HelmRelease":
        spec["chart"] = {"spec": {"chart": "podinfo", "version": "6.x",
                                  "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}}}
        spec["values"] = {"replicaCount": 2, "resources": {"limits": {"memory": "256Mi"}}}
        status.update({"lastAttemptedRevision": "6.7.1", "lastAttemptedConfigDigest": "sha256:" + "cd" * 32,
                       "helmChart": f"{ns}/{ns}-{name}", "storageNamespace": ns,
                       "history": [{"name": name, "namespace": ns, "version": 3, "status": "deployed",
                                    "chartName": "podinfo", "chartVersion": "6.7.1", "appVersion": "6.7.1",
                                    "configDigest": "sha256:" + "cd" * 32, "digest": "sha256:" + "ef" * 32,
                                    "firstDeployed": T, "lastDeployed": T}]})
    if kind == "Alert":
        spec.update({"providerRef": {"name": "slack"}, "eventSeverity": "error",
                     "eventSources": [{"kind": "Kustomization", "name": "*"}, {"kind": "HelmRelease", "name": "*"}]})
    if kind == "Provider":
        spec.update({"type": "slack", "channel": f"alerts-{ns}", "secretRef": {"name": "slack-webhook"}})
    if kind == "Receiver":
        spec.update({"type": "github", "events": ["ping", "push"], "secretRef": {"name": "webhook-token"},
                     "resources": [{"kind": "GitRepository", "name": "fleet"}]})
        status["webhookPath"] = "/hook/" + "0123456789abcdef" * 4
    if kind == "ImageRepository":
        spec.update({"image": f"ghcr.io/example/{name}", "exclusionList": ["^.*\\.sig$"]})
        status.update({"canonicalImageName": f"ghcr.io/example/{name}",
                       "lastScanResult": {"tagCount": 42, "scanTime": T,
                                          "latestTags": [f"1.{j}.0" for j in range(10)]}})
    if kind == "ImagePolicy":
        spec.update({"imageRepositoryRef": {"name": name}, "policy": {"semver": {"range": ">=1.0.0"}}})
        status.update({"latestRef": {"name": f"ghcr.io/example/{name}", "tag": "1.9.0"},
                       "observedPreviousRef": {"name": f"ghcr.io/example/{name}", "tag": "1.8.0"}})
    if kind == "ImageUpdateAutomation":
        spec.update({"sourceRef": {"kind": "GitRepository", "name": "fleet"},
                     "git": {"checkout": {"ref": {"branch": "main"}},
                             "commit": {"author": {"name": "fluxbot", "email": "fluxbot@example.com"}},
                             "push": {"branch": "main"}},
                     "update": {"path": "./clusters", "strategy": "Setters"}})
        status.update({"lastAutomationRunTime": T, "lastPushCommit": "4d3b2a1c0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c",
                       "lastPushTime": T})
    return obj


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n", type=int, nargs="?", default=1000)
    p.add_argument("--part", choices=["all", "crds", "objects"], default="all")
    p.add_argument("--kinds", action="store_true", help="print each kind's collection and object count")
    a = p.parse_args()
    if a.kinds:
        for k, (group, version, _, plural) in enumerate(KINDS):
            count = len(range(k, a.n, len(KINDS)))
            print(f"/apis/{group}/{version}/{plural} {count}")
        return
    items = []
    if a.part in ("all", "crds"):
        items += [crd(*k) for k in KINDS]
    if a.part in ("all", "objects"):
        items += [deployment(n) for n in ["source-controller", "kustomize-controller", "helm-controller",
                                          "notification-controller", "image-reflector-controller",
                                          "image-automation-controller"]]
        sizes = {}
        for i in range(a.n):
            group, version, kind, _ = KINDS[i % len(KINDS)]
            obj = flux_object(i, group, version, kind)
            items.append(obj)
            total, count = sizes.get(kind, (0, 0))
            sizes[kind] = (total + len(json.dumps(obj)), count + 1)
        if sizes:
            print("gen-objects: mean JSON bytes per object: " +
                  ", ".join(f"{k} {t // c}" for k, (t, c) in sizes.items()), file=sys.stderr)
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)


if __name__ == "__main__":
    main()
