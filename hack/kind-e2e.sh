#!/usr/bin/env bash
# End to end on real containers (machines with Docker only; CI does not run it):
# kind cluster -> build both images -> kind load -> Azurite and the sample image server in the cluster ->
# helm install (bundled Redis) -> apply examples/cats-vs-dogs.yaml -> wait for condition Complete.
#   KEEP=1            keep the cluster afterwards (default: delete it)
#   CLUSTER=name      kind cluster name (default pixcrawler-e2e)
#   TIMEOUT=15m       how long the DatasetJob may take
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER=${CLUSTER:-pixcrawler-e2e}
TIMEOUT=${TIMEOUT:-15m}
TAG=e2e
NS=pixcrawler
FIXTURES=pixcrawler-e2e-fixtures
AZURITE_IMAGE=mcr.microsoft.com/azure-storage/azurite:3.33.0
AZURITE_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CACHED=$(bash "$ROOT/hack/control-plane.sh" path 2>/dev/null || true)
export PATH="$PATH:$CACHED"

die() { echo "kind-e2e: $*" >&2; exit 1; }
log() { echo "kind-e2e: $*" >&2; }
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (this script needs Docker, kind, kubectl and helm)"
done
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable"

cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    log "failed; state follows"
    kubectl -n "$NS" get dsj,jobs,pods -o wide || true
    kubectl -n "$NS" describe dsj || true
    kubectl -n "$NS" logs deploy/pixcrawler-operator --tail=200 || true
  fi
  if [ "${KEEP:-0}" != 1 ]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
  exit "$rc"
}
trap cleanup EXIT

if ! kind get clusters | grep -qx "$CLUSTER"; then
  log "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --wait 180s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

log "building images"
docker build -f "$ROOT/Dockerfile.operator" -t "pixcrawler/operator:$TAG" "$ROOT"
docker build -f "$ROOT/Dockerfile.worker" -t "pixcrawler/worker:$TAG" "$ROOT"
kind load docker-image --name "$CLUSTER" "pixcrawler/operator:$TAG" "pixcrawler/worker:$TAG"

log "starting Azurite and the sample image server in namespace $FIXTURES"
kubectl create namespace "$FIXTURES" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$FIXTURES" create configmap imageserver --from-file=imageserver.py="$ROOT/hack/imageserver.py" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$FIXTURES" apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: azurite, labels: {app: azurite}}
spec:
  selector: {matchLabels: {app: azurite}}
  template:
    metadata: {labels: {app: azurite}}
    spec:
      containers:
        - name: azurite
          image: $AZURITE_IMAGE
          command: [azurite-blob, --blobHost, 0.0.0.0, --blobPort, "10000", --skipApiVersionCheck, --loose]
          ports: [{containerPort: 10000}]
---
apiVersion: v1
kind: Service
metadata: {name: azurite}
spec: {selector: {app: azurite}, ports: [{port: 10000, targetPort: 10000}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: imageserver, labels: {app: imageserver}}
spec:
  selector: {matchLabels: {app: imageserver}}
  template:
    metadata: {labels: {app: imageserver}}
    spec:
      containers:
        - name: imageserver
          image: pixcrawler/worker:$TAG
          imagePullPolicy: IfNotPresent
          command: [python, -c]
          args:
            - |
              import sys, time
              sys.path.insert(0, "/app")
              from imageserver import ImageServer
              ImageServer(port=8000, count=200, host="0.0.0.0",
                          public_host="imageserver.$FIXTURES.svc.cluster.local").start()
              time.sleep(10**9)
          ports: [{containerPort: 8000}]
          volumeMounts: [{name: code, mountPath: /app}]
      volumes: [{name: code, configMap: {name: imageserver}}]
---
apiVersion: v1
kind: Service
metadata: {name: imageserver}
spec: {selector: {app: imageserver}, ports: [{port: 8000, targetPort: 8000}]}
YAML
kubectl -n "$FIXTURES" rollout status deploy/azurite --timeout=180s
kubectl -n "$FIXTURES" rollout status deploy/imageserver --timeout=180s

log "installing the chart"
CONNECTION="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$AZURITE_KEY;BlobEndpoint=http://azurite.$FIXTURES.svc.cluster.local:10000/devstoreaccount1;"
VALUES=$(mktemp)
cat >"$VALUES" <<YAML
fullnameOverride: pixcrawler-operator
operator:
  image: {repository: pixcrawler/operator, tag: $TAG}
worker:
  image: {repository: pixcrawler/worker, tag: $TAG}
  # the sample image server is inside the cluster: let the fetchers reach pod and service addresses
  allowNetworks: [10.244.0.0/16, 10.96.0.0/12]
  networkPolicy:
    extraEgress:
      - to:
          - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: $FIXTURES}}
redis:
  mode: bundled
storage:
  default: azure://datasets
  azure:
    connectionString: "$CONNECTION"
YAML
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl label --overwrite namespace "$NS" pod-security.kubernetes.io/enforce=restricted >/dev/null
helm upgrade --install pixcrawler "$ROOT/helm/pixcrawler-operator" -n "$NS" -f "$VALUES" --wait --timeout 5m
rm -f "$VALUES"

log "applying examples/cats-vs-dogs.yaml"
sed "s#http://127.0.0.1:8000#http://imageserver.$FIXTURES.svc.cluster.local:8000#g" \
  "$ROOT/examples/cats-vs-dogs.yaml" | kubectl -n "$NS" apply -f -
kubectl -n "$NS" wait --for=condition=Complete dsj/cats-vs-dogs --timeout="$TIMEOUT"
kubectl -n "$NS" get dsj cats-vs-dogs -o wide
log "passed: the example DatasetJob completed on kind with the chart and both images"
