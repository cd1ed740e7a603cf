// A minimal admission webhook written the way a platform team writes one with
// controller-runtime: the pod decoded into corev1.Pod, changed, marshalled,
// and the JSON patch computed by admission.PatchResponseFromRaw. It is the Go
// peer of bench/bench_apiserver.py: it injects what model-cache's pvc
// strategy injects into the vLLM pod of tests/golden (read from -injection,
// which the benchmark derives from model-cache's own answer), so both sides
// send the API server the same patch.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// injection is what the pvc strategy adds to a pod: the benchmark writes it
// from the difference between model-cache's input and output pods.
type injection struct {
	Trigger         string                     `json:"trigger"`
	Annotations     map[string]string          `json:"annotations"`
	Volumes         []corev1.Volume            `json:"volumes"`
	InitContainers  []corev1.Container         `json:"initContainers"`
	VolumeMounts    []corev1.VolumeMount       `json:"volumeMounts"`
	Env             []corev1.EnvVar            `json:"env"`
	SecurityContext *corev1.PodSecurityContext `json:"securityContext"`
}

type injector struct {
	decoder admission.Decoder
	inject  injection
}

func (h *injector) Handle(_ context.Context, req admission.Request) admission.Response {
	pod := &corev1.Pod{}
	if err := h.decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if _, ok := pod.Annotations[h.inject.Trigger]; !ok {
		return admission.Allowed("no model asked for")
	}
	for key := range h.inject.Annotations {
		if _, done := pod.Annotations[key]; done {
			return admission.Allowed("already injected")
		}
	}
	for key, value := range h.inject.Annotations {
		pod.Annotations[key] = value
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, h.inject.Volumes...)
	pod.Spec.InitContainers = append(append([]corev1.Container{}, h.inject.InitContainers...), pod.Spec.InitContainers...)
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		c.Env = append(c.Env, h.inject.Env...)
		c.VolumeMounts = append(c.VolumeMounts, h.inject.VolumeMounts...)
	}
	if h.inject.SecurityContext != nil {
		pod.Spec.SecurityContext = h.inject.SecurityContext
	}
	marshalled, err := json.Marshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, marshalled)
}

func main() {
	port := flag.Int("port", 9443, "TLS port")
	host := flag.String("host", "127.0.0.1", "address to bind")
	certDir := flag.String("cert-dir", "", "directory holding tls.crt and tls.key")
	injectionFile := flag.String("injection", "", "the injection, as JSON")
	http2 := flag.Bool("http2", false, "offer HTTP/2 (kubebuilder's scaffold turns it off by default)")
	flag.Parse()

	raw, err := os.ReadFile(*injectionFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var inject injection
	if err := json.Unmarshal(raw, &inject); err != nil {
		fmt.Fprintln(os.Stderr, "injection:", err)
		os.Exit(2)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	var tlsOpts []func(*tls.Config)
	if !*http2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	server := webhook.NewServer(webhook.Options{
		Host: *host, Port: *port, CertDir: *certDir, CertName: "tls.crt", KeyName: "tls.key",
		TLSOpts: tlsOpts,
	})
	server.Register("/mutate", &webhook.Admission{Handler: &injector{decoder: admission.NewDecoder(scheme), inject: inject}})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
