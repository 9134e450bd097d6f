// Command kstatus prints what sigs.k8s.io/cli-utils' kstatus library (the one
// Flux, kpt and `kubectl wait`-style tooling use) computes for live objects, so
// PlanOps' tests assert against the real library instead of a re-implementation.
//
// Usage:
//
//	KUBECONFIG=... kstatus GROUP/VERSION/KIND NAMESPACE NAME [GROUP/VERSION/KIND NAMESPACE NAME ...]
//
// The core group is written as an empty group ("/v1/ConfigMap") or just
// "v1/ConfigMap". NAMESPACE is "" or "-" for cluster-scoped objects.
// One JSON line per object on stdout: {"status":"Current","message":"..."}.
// A missing object is reported as status "NotFound", not as an error.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type output struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func parseGVK(s string) (schema.GroupVersionKind, error) {
	parts := strings.Split(s, "/")
	switch len(parts) {
	case 2:
		return schema.GroupVersionKind{Version: parts[0], Kind: parts[1]}, nil
	case 3:
		return schema.GroupVersionKind{Group: parts[0], Version: parts[1], Kind: parts[2]}, nil
	}
	return schema.GroupVersionKind{}, fmt.Errorf("%q is not GROUP/VERSION/KIND", s)
}

func run(args []string) error {
	if len(args) == 0 || len(args)%3 != 0 {
		return fmt.Errorf("usage: kstatus GROUP/VERSION/KIND NAMESPACE NAME [...]")
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.Timeout = 30 * time.Second
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	enc := json.NewEncoder(os.Stdout)
	for i := 0; i < len(args); i += 3 {
		gvk, err := parseGVK(args[i])
		if err != nil {
			return err
		}
		ns, name := args[i+1], args[i+2]
		if ns == "-" {
			ns = ""
		}
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("mapping %s: %w", gvk, err)
		}
		var res dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if ns != "" {
			res = dyn.Resource(mapping.Resource).Namespace(ns)
		}
		obj, err := res.Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			if err := enc.Encode(output{Status: status.NotFoundStatus.String(), Message: "resource not found"}); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("getting %s %s/%s: %w", gvk, ns, name, err)
		}
		result, err := status.Compute(obj)
		if err != nil {
			return fmt.Errorf("computing status of %s %s/%s: %w", gvk, ns, name, err)
		}
		if err := enc.Encode(output{Status: result.Status.String(), Message: result.Message}); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}
