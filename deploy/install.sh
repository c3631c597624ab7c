#!/usr/bin/env bash
# Installs the gateway side of the inference stack into a cluster: the Gateway API CRDs, the Gateway API
# Inference Extension CRDs (InferencePool), agentgateway with its inference extension, and the Gateway
# `inference-gateway` in ${NAMESPACE}. The model deployment itself (EPP, pool, route, workers) is a kustomize
# overlay applied afterwards: see docs/deploy.md.
#
#   NAMESPACE=my-model deploy/install.sh [install] [--dry-run]
#   NAMESPACE=my-model deploy/install.sh uninstall [--dry-run]
#
# install is idempotent (server-side apply, helm upgrade --install): run it again to repair or upgrade.
# --dry-run prints what would be applied (commands as `#` comments, local manifests as YAML) and touches
# no cluster. uninstall removes the Gateway, agentgateway and the CRDs again, in the reverse order.
#
# Environment:
#   NAMESPACE                namespace of the Gateway and of the model deployment (required)
#   GATEWAY_CLASS            agentgateway (default), or istio for an installed Istio >= 1.27 with the
#                            inference extension enabled (agentgateway is then not installed)
#   GATEWAY_API_VERSION      Gateway API release (default v1.5.1)
#   GAIE_VERSION             Gateway API Inference Extension release (default v1.6.2)
#   AGENTGATEWAY_VERSION     agentgateway Helm chart version (default v1.0.0)
#   AGENTGATEWAY_NAMESPACE   namespace of the agentgateway controller (default agentgateway-system)
#   KEEP_CRDS=1              uninstall leaves the Gateway API and Inference Extension CRDs in place
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GATEWAY_CLASS=${GATEWAY_CLASS:-agentgateway}
GATEWAY_API_VERSION=${GATEWAY_API_VERSION:-v1.5.1}
GAIE_VERSION=${GAIE_VERSION:-v1.6.2}
AGENTGATEWAY_VERSION=${AGENTGATEWAY_VERSION:-v1.0.0}
AGENTGATEWAY_NAMESPACE=${AGENTGATEWAY_NAMESPACE:-agentgateway-system}
KEEP_CRDS=${KEEP_CRDS:-0}

GATEWAY_API_URL="https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/standard-install.yaml"
GAIE_URL="https://github.com/kubernetes-sigs/gateway-api-inference-extension/releases/download/${GAIE_VERSION}/manifests.yaml"
AGENTGATEWAY_CHARTS=oci://cr.agentgateway.dev/charts

usage() {
  sed -n '7,8p' "$0" | sed 's/^# *//' >&2
  exit 2
}

command=install
dry_run=0
for arg in "$@"; do
  case "$arg" in
    install | uninstall) command=$arg ;;
    --dry-run) dry_run=1 ;;
    -h | --help) usage ;;
    *)
      echo "install.sh: unknown argument '$arg'" >&2
      usage
      ;;
  esac
done

if [ -z "${NAMESPACE:-}" ]; then
  echo "install.sh: NAMESPACE is not set: export NAMESPACE=<namespace for the Gateway and the model>, e.g. my-model" >&2
  exit 2
fi
case "$GATEWAY_CLASS" in
  agentgateway | istio) ;;
  *)
    echo "install.sh: GATEWAY_CLASS='$GATEWAY_CLASS' must be agentgateway or istio" >&2
    exit 2
    ;;
esac
gateway_dir="$here/gateway/$GATEWAY_CLASS"

require() {
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "install.sh: '$tool' is required but not on PATH" >&2
      exit 1
    fi
  done
}

# Runs a command, or prints it as a YAML comment under --dry-run.
run() {
  if [ "$dry_run" = 1 ]; then
    echo "# $*"
  else
    echo "+ $*" >&2
    "$@"
  fi
}

# Applies a local kustomization into $NAMESPACE, or prints the manifests it would apply.
apply_kustomization() {
  if [ "$dry_run" = 1 ]; then
    echo "# kubectl apply --server-side -n $NAMESPACE -k $1"
    echo "---"
    kubectl kustomize "$1"
  else
    run kubectl apply --server-side -n "$NAMESPACE" -k "$1"
  fi
}

ensure_namespace() {
  if [ "$dry_run" = 1 ]; then
    echo "# kubectl create namespace $1 --dry-run=client -o yaml | kubectl apply -f -"
  else
    echo "+ create namespace $1 (if missing)" >&2
    kubectl create namespace "$1" --dry-run=client -o yaml | kubectl apply -f -
  fi
}

helm_release_exists() {
  helm status "$1" -n "$AGENTGATEWAY_NAMESPACE" >/dev/null 2>&1
}

install() {
  ensure_namespace "$NAMESPACE"
  run kubectl apply --server-side --force-conflicts -f "$GATEWAY_API_URL"
  run kubectl apply --server-side --force-conflicts -f "$GAIE_URL"
  if [ "$GATEWAY_CLASS" = agentgateway ]; then
    run helm upgrade --install agentgateway-crds "$AGENTGATEWAY_CHARTS/agentgateway-crds" \
      --version "$AGENTGATEWAY_VERSION" --namespace "$AGENTGATEWAY_NAMESPACE" --create-namespace
    run helm upgrade --install agentgateway "$AGENTGATEWAY_CHARTS/agentgateway" \
      --version "$AGENTGATEWAY_VERSION" --namespace "$AGENTGATEWAY_NAMESPACE" \
      --set inferenceExtension.enabled=true --wait
  else
    run kubectl get gatewayclass istio
  fi
  apply_kustomization "$gateway_dir"
  run kubectl wait gateway/inference-gateway -n "$NAMESPACE" --for=condition=Programmed --timeout=300s
}

crd_exists() {
  kubectl get crd "$1" >/dev/null 2>&1
}

# The reverse of install, each step skipped when there is nothing left to remove, so it can be re-run.
uninstall() {
  # The Gateway and its parameters first, while their CRDs still exist.
  if [ "$dry_run" = 1 ] || crd_exists gateways.gateway.networking.k8s.io; then
    run kubectl delete gateway inference-gateway -n "$NAMESPACE" --ignore-not-found
  fi
  if [ "$GATEWAY_CLASS" = agentgateway ]; then
    if [ "$dry_run" = 1 ] || crd_exists agentgatewayparameters.agentgateway.dev; then
      run kubectl delete agentgatewayparameters inference-gateway-params -n "$NAMESPACE" --ignore-not-found
    fi
    for release in agentgateway agentgateway-crds; do
      if [ "$dry_run" = 1 ] || helm_release_exists "$release"; then
        run helm uninstall "$release" --namespace "$AGENTGATEWAY_NAMESPACE"
      fi
    done
    run kubectl delete namespace "$AGENTGATEWAY_NAMESPACE" --ignore-not-found
  fi
  if [ "$KEEP_CRDS" != 1 ]; then
    run kubectl delete -f "$GAIE_URL" --ignore-not-found
    run kubectl delete -f "$GATEWAY_API_URL" --ignore-not-found
  fi
}

if [ "$dry_run" = 1 ]; then
  require kubectl
elif [ "$GATEWAY_CLASS" = agentgateway ]; then
  require kubectl helm
else
  require kubectl
fi

echo "# $command: Gateway class $GATEWAY_CLASS in namespace $NAMESPACE; Gateway API $GATEWAY_API_VERSION, inference extension $GAIE_VERSION$([ "$GATEWAY_CLASS" = agentgateway ] && echo ", agentgateway $AGENTGATEWAY_VERSION")"
"$command"
