#!/usr/bin/env python3
"""Write a JSON List of N realistic Flux objects (plus their CRDs and the
controller Deployments) for benchmarks: hack/gen-objects.py N > objects.json

Objects are spread over GitRepository, OCIRepository, HelmRepository,
HelmChart, Kustomization and HelmRelease in 50 namespaces, with the statuses
a real cluster has (conditions, artifacts, Kustomization inventories), so the
bytes per object are close to a real list (about 2-4 KiB each).
"""
import json
import sys
import uuid

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
kinds = [
    ("source.toolkit.fluxcd.io", "GitRepository", "gitrepositories"),
    ("source.toolkit.fluxcd.io", "OCIRepository", "ocirepositories"),
    ("source.toolkit.fluxcd.io", "HelmRepository", "helmrepositories"),
    ("source.toolkit.fluxcd.io", "HelmChart", "helmcharts"),
    ("kustomize.toolkit.fluxcd.io", "Kustomization", "kustomizations"),
    ("helm.toolkit.fluxcd.io", "HelmRelease", "helmreleases"),
]
versions = {"helm.toolkit.fluxcd.io": "v2"}
items = []
for group, kind, plural in kinds:
    v = versions.get(group, "v1")
    items.append({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "labels": {
            "app.kubernetes.io/part-of": "flux", "app.kubernetes.io/version": "v2.7.3",
            "app.kubernetes.io/component": "controller"}},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": kind + "List"},
                 "versions": [{"name": v, "served": True, "storage": True, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
    })
for name in ["source-controller", "kustomize-controller", "helm-controller", "notification-controller"]:
    items.append({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "flux-system", "generation": 1,
                     "labels": {"app.kubernetes.io/part-of": "flux", "app.kubernetes.io/component": name}},
        "spec": {"replicas": 1, "progressDeadlineSeconds": 600, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "manager", "image": f"ghcr.io/fluxcd/{name}:v1.7.3"}]}}},
        "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                   "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                                  {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]},
    })
for i in range(n):
    group, kind, plural = kinds[i % len(kinds)]
    ns = f"team-{i % 50}"
    name = f"{kind.lower()}-{i}"
    failing = i % 17 == 0
    cond = {"type": "Ready", "status": "False" if failing else "True",
            "reason": "BuildFailed" if failing else "Succeeded",
            "message": ("kustomize build failed: accumulating resources from './apps': no such file" if failing
                        else "stored artifact for revision 'main@sha1:4d3b2a1c0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c'"),
            "lastTransitionTime": "2026-11-20T10:00:00Z", "observedGeneration": 1}
    obj = {"apiVersion": f"{group}/{versions.get(group, 'v1')}", "kind": kind,
           "metadata": {"name": name, "namespace": ns, "uid": str(uuid.UUID(int=i)), "generation": 1,
                        "labels": {"team": f"t{i % 7}", "kustomize.toolkit.fluxcd.io/name": "apps",
                                   "kustomize.toolkit.fluxcd.io/namespace": "flux-system"},
                        "finalizers": ["finalizers.fluxcd.io"],
                        "creationTimestamp": "2026-11-01T00:00:00Z"},
           "spec": {"interval": "5m", "suspend": i % 23 == 0},
           "status": {"observedGeneration": 1, "conditions": [
               cond, {"type": "Reconciling", "status": "False", "reason": "Succeeded", "message": "", "lastTransitionTime": "2026-11-20T10:00:00Z"}]}}
    if group == "source.toolkit.fluxcd.io":
        obj["spec"]["url"] = f"https://github.com/example/{name}.git"
        obj["spec"]["ref"] = {"branch": "main"}
        obj["status"]["artifact"] = {"revision": "main@sha1:4d3b2a1c0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c", "size": 10240 + i,
                                     "digest": "sha256:" + "ab" * 32, "path": f"{kind.lower()}/{ns}/{name}/latest.tar.gz",
                                     "url": f"http://source-controller.flux-system.svc.cluster.local./{kind.lower()}/{ns}/{name}/latest.tar.gz",
                                     "lastUpdateTime": "2026-11-20T10:00:00Z"}
    if kind == "Kustomization":
        obj["spec"].update({"path": f"./apps/{name}", "prune": True, "sourceRef": {"kind": "GitRepository", "name": "fleet"}})
        obj["status"]["lastAppliedRevision"] = "main@sha1:4d3b2a1c0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c"
        obj["status"]["inventory"] = {"entries": [{"id": f"{ns}_{name}-{j}_apps_Deployment", "v": "v1"} for j in range(10)]}
    if kind == "HelmRelease":
        obj["spec"]["chart"] = {"spec": {"chart": "podinfo", "version": "6.x", "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}}}
        obj["spec"]["values"] = {"replicaCount": 2, "resources": {"limits": {"memory": "256Mi"}}}
    items.append(obj)
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)
