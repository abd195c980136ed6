// Package k8s holds the checks of the Kubernetes manifests (base/, overlays/) and the NATS Helm
// values: no cluster runs here, so this renders the example overlay with kustomize's own library
// and decodes every document strictly into the Kubernetes API types, and checks every KEDA
// ScaledObject against KEDA's published CRD schema, so that a misspelt field fails the build
// instead of being dropped by the API server.
package k8s

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/registry"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// manifests is the rendered overlay, each document decoded into its API type.
type manifests struct {
	deployments   map[string]appsv1.Deployment
	pdbs          map[string]policyv1.PodDisruptionBudget
	scaled        map[string]scaledObject
	jobs          map[string]batchv1.Job
	configMaps    map[string]corev1.ConfigMap
	accounts      map[string]corev1.ServiceAccount
	namespaces    map[string]corev1.Namespace
	renderedNames []string
}

// render builds dir as `kubectl apply -k` does and decodes every document strictly (the
// ScaledObjects checked against KEDA's CRD schema).
func render(t *testing.T, dir string) manifests {
	t.Helper()
	kedaSchema, err := crdSchema(scaledObjectCRD, "v1alpha1")
	if err != nil {
		t.Fatal(err)
	}
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	m := manifests{deployments: map[string]appsv1.Deployment{}, pdbs: map[string]policyv1.PodDisruptionBudget{},
		scaled: map[string]scaledObject{}, jobs: map[string]batchv1.Job{}, configMaps: map[string]corev1.ConfigMap{},
		accounts: map[string]corev1.ServiceAccount{}, namespaces: map[string]corev1.Namespace{}}
	for _, r := range resources.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		kind, name := r.GetKind(), r.GetName()
		m.renderedNames = append(m.renderedNames, kind+"/"+name)
		var decodeErr error
		switch kind {
		case "Deployment":
			decodeErr = decodeInto(doc, name, m.deployments)
		case "PodDisruptionBudget":
			decodeErr = decodeInto(doc, name, m.pdbs)
		case "ScaledObject":
			if decodeErr = errors.Join(checkScaledObject(doc, kedaSchema)...); decodeErr == nil {
				var so scaledObject
				decodeErr = yaml.Unmarshal(doc, &so)
				m.scaled[name] = so
			}
		case "Job":
			decodeErr = decodeInto(doc, name, m.jobs)
		case "ConfigMap":
			decodeErr = decodeInto(doc, name, m.configMaps)
		case "ServiceAccount":
			decodeErr = decodeInto(doc, name, m.accounts)
		case "Namespace":
			decodeErr = decodeInto(doc, name, m.namespaces)
		default:
			decodeErr = fmt.Errorf("no API type is checked for kind %s", kind)
		}
		if decodeErr != nil {
			t.Errorf("%s %s: %v", kind, name, decodeErr)
		}
	}
	return m
}

// decodeInto decodes one document strictly (an unknown or duplicate field is an error) into a new
// T stored under name.
func decodeInto[T any](doc []byte, name string, into map[string]T) error {
	var v T
	if err := yaml.UnmarshalStrict(doc, &v); err != nil {
		return err
	}
	into[name] = v
	return nil
}

// TestStrictDecodingCatchesAMisspeltField: the decoding the other tests rely on refuses what the
// API server would silently drop.
func TestStrictDecodingCatchesAMisspeltField(t *testing.T) {
	for _, tt := range []struct {
		name string
		doc  string
		err  bool
	}{
		{"known fields", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {revisionHistoryLimit: 2}\n", false},
		{"misspelt field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {revisionHistoryLimits: 2}\n", true},
		{"duplicate field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {paused: true, paused: false}\n", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := decodeInto([]byte(tt.doc), "x", map[string]appsv1.Deployment{})
			if (err != nil) != tt.err {
				t.Errorf("decode error %v, want an error: %v", err, tt.err)
			}
		})
	}
}

// TestOverlayRendersEveryStage: the example overlay has, for every stage of the stage table, a
// Deployment, a PodDisruptionBudget covering its pods and a ScaledObject scaling it, plus the
// topology Job; every object lands in the overlay's namespace.
func TestOverlayRendersEveryStage(t *testing.T) {
	m := render(t, filepath.Join("overlays", "example"))
	const ns = "amrpipe"
	if _, ok := m.namespaces[ns]; !ok {
		t.Errorf("no Namespace %s in %v", ns, m.renderedNames)
	}
	var stages []string
	for _, d := range registry.All() {
		stages = append(stages, d.Name)
		dep, ok := m.deployments[d.Name]
		if !ok {
			t.Errorf("stage %s has no Deployment", d.Name)
			continue
		}
		if dep.Namespace != ns {
			t.Errorf("Deployment %s in namespace %q, want %s", d.Name, dep.Namespace, ns)
		}
		pods := dep.Spec.Template.Labels
		pdb, ok := m.pdbs[d.Name]
		switch {
		case !ok:
			t.Errorf("stage %s has no PodDisruptionBudget", d.Name)
		case pdb.Spec.Selector == nil || !selects(pdb.Spec.Selector.MatchLabels, pods) || len(pdb.Spec.Selector.MatchExpressions) > 0:
			t.Errorf("PodDisruptionBudget %s selects %v, not the pods of its Deployment (%v)", d.Name, pdb.Spec.Selector, pods)
		case pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil:
			t.Errorf("PodDisruptionBudget %s sets no budget", d.Name)
		}
		if !selects(dep.Spec.Selector.MatchLabels, pods) {
			t.Errorf("Deployment %s: selector %v does not select its pods %v", d.Name, dep.Spec.Selector.MatchLabels, pods)
		}
		if dep.Spec.Replicas != nil {
			t.Errorf("Deployment %s sets replicas: KEDA owns the count, an applied one would fight it", d.Name)
		}
		so, ok := m.scaled[d.Name]
		if !ok {
			t.Errorf("stage %s has no ScaledObject", d.Name)
			continue
		}
		if so.Spec.ScaleTargetRef == nil || so.Spec.ScaleTargetRef.Name != d.Name || (so.Spec.ScaleTargetRef.Kind != "" && so.Spec.ScaleTargetRef.Kind != "Deployment") {
			t.Errorf("ScaledObject %s scales %+v, not Deployment %s", d.Name, so.Spec.ScaleTargetRef, d.Name)
		}
		if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 1 {
			// Every stage runs timers of its own (the janitor, the parser's watchdog, the relay's
			// schedules): none may scale to zero.
			t.Errorf("ScaledObject %s may scale to zero", d.Name)
		}
		if so.Spec.MaxReplicaCount == nil || so.Spec.MinReplicaCount == nil || *so.Spec.MaxReplicaCount < *so.Spec.MinReplicaCount {
			t.Errorf("ScaledObject %s: max replicas %v under min %v", d.Name, so.Spec.MaxReplicaCount, so.Spec.MinReplicaCount)
		}
	}
	for name := range m.deployments {
		if !slices.Contains(stages, name) {
			t.Errorf("Deployment %s is no stage of the stage table", name)
		}
	}
	job, ok := m.jobs["amrpipe-topology"]
	if !ok {
		t.Fatalf("no topology Job in %v", m.renderedNames)
	}
	c := job.Spec.Template.Spec.Containers
	if len(c) != 1 || !slices.Equal(c[0].Args, []string{"topology", "apply", "--replicas", "3"}) {
		t.Errorf("topology Job runs %v, want amrctl topology apply --replicas 3", c)
	}
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestScaledObjectsScaleOnTheStagesConsumers: each stage scales on the lag of its own durable
// consumers on the streams the topology binds them to, with the metadata KEDA's scaler reads;
// the relay, whose backlog is a poll schedule, scales on the jobs it follows (README.md).
func TestScaledObjectsScaleOnTheStagesConsumers(t *testing.T) {
	m := render(t, filepath.Join("overlays", "example"))
	for _, d := range registry.All() {
		so, ok := m.scaled[d.Name]
		if !ok {
			t.Errorf("stage %s has no ScaledObject", d.Name)
			continue
		}
		var consumers []string
		for i, tr := range so.Spec.Triggers {
			k, ok := scalerKeys[tr.Type]
			if !ok {
				t.Errorf("%s trigger %d: type %q is not checked here", d.Name, i, tr.Type)
				continue
			}
			for key := range tr.Metadata {
				if !slices.Contains(k.known, key) {
					t.Errorf("%s trigger %d (%s): KEDA's scaler reads no metadata %q (it reads %v)", d.Name, i, tr.Type, key, k.known)
				}
			}
			for _, key := range k.required {
				if tr.Metadata[key] == "" {
					t.Errorf("%s trigger %d (%s): no %q", d.Name, i, tr.Type, key)
				}
			}
			switch tr.Type {
			case "nats-jetstream":
				spec, err := topology.Consumer(tr.Metadata["consumer"])
				if err != nil {
					t.Errorf("%s trigger %d: %v", d.Name, i, err)
					continue
				}
				if spec.Stream != tr.Metadata["stream"] {
					t.Errorf("%s trigger %d: consumer %s reads stream %s, not %s", d.Name, i, spec.Config.Durable, spec.Stream, tr.Metadata["stream"])
				}
				consumers = append(consumers, spec.Config.Durable)
			case "prometheus":
				if d.Name != topology.StageRelay {
					t.Errorf("%s scales on a Prometheus query: the stages with work queues scale on their consumers' lag", d.Name)
				}
				if !strings.Contains(tr.Metadata["query"], "amr_relay_followed_jobs") {
					t.Errorf("%s scales on %q, not the jobs it follows", d.Name, tr.Metadata["query"])
				}
			}
		}
		if d.Name == topology.StageRelay {
			continue
		}
		slices.Sort(consumers)
		want := slices.Sorted(slices.Values(d.Consumers))
		if !slices.Equal(consumers, want) {
			t.Errorf("%s scales on consumers %v, want its own %v", d.Name, consumers, want)
		}
	}
}

// triggerKeys are the metadata keys a KEDA scaler reads from a trigger, and those it requires.
type triggerKeys struct{ known, required []string }

// scalerKeys are the trigger metadata keys of the scalers used here, copied from KEDA v2.21.0's
// source (github.com/kedacore/keda/v2, Apache-2.0): the fields of natsJetStreamMetadata in
// pkg/scalers/nats_jetstream_scaler.go and of prometheusMetadata in pkg/scalers/prometheus_scaler.go
// whose `keda:"..."` tag reads triggerMetadata. Required are those neither optional nor defaulted:
// no TriggerAuthentication is used here, so what a scaler may also take from one must be in the
// trigger. Update with the KEDA version the cluster runs (testdata/keda.sh_scaledobjects.yaml).
var scalerKeys = map[string]triggerKeys{
	"nats-jetstream": {
		known: []string{"account", "accountID", "stream", "consumer", "lagThreshold", "activationLagThreshold",
			"useHttps", "natsServerMonitoringEndpoint"},
		required: []string{"stream", "consumer", "natsServerMonitoringEndpoint"},
	},
	"prometheus": {
		known: []string{"serverAddress", "query", "queryParameters", "threshold", "activationThreshold", "namespace",
			"customHeaders", "ignoreNullValues", "unsafeSsl", "awsRegion", "timeout", "identityOwner"},
		required: []string{"serverAddress", "query", "threshold"},
	},
}

// TestStagesAreConfiguredByTheirOwnFlags: every AMR_* variable a Deployment sets is a flag or a
// secret of that stage (a misspelt or foreign one would be ignored silently), every secret
// variable comes from a Secret (never a value) and only the stages that read a secret get it.
func TestStagesAreConfiguredByTheirOwnFlags(t *testing.T) {
	m := render(t, filepath.Join("overlays", "example"))
	// Standard variables of the Go runtime a Deployment may set.
	runtimeVars := []string{"GOMEMLIMIT", "GOMAXPROCS"}
	for _, d := range registry.All() {
		dep, ok := m.deployments[d.Name]
		if !ok {
			t.Errorf("stage %s has no Deployment", d.Name)
			continue
		}
		flags := map[string]bool{}
		d.FlagSet(&stage.Config{}, d.NewConfig()).VisitAll(func(f *flag.Flag) { flags[flagenv.EnvName(stage.EnvPrefix, f.Name)] = true })
		secrets := d.Secrets()
		spec := dep.Spec.Template.Spec
		if len(spec.Containers) != 1 {
			t.Fatalf("Deployment %s has %d containers, want the stage's one", d.Name, len(spec.Containers))
		}
		c := spec.Containers[0]
		secretNames := map[string]bool{}
		for _, e := range c.Env {
			isSecret := slices.Contains(secrets, e.Name)
			switch {
			case isSecret:
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					t.Errorf("%s: secret %s is not taken from a Secret", d.Name, e.Name)
				} else {
					secretNames[e.ValueFrom.SecretKeyRef.Name] = true
				}
			case flags[e.Name]:
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					t.Errorf("%s: flag variable %s comes from Secret %s: flags show in ps and logs, secrets never are flags", d.Name, e.Name, e.ValueFrom.SecretKeyRef.Name)
				}
				if ref := e.ValueFrom; ref != nil && ref.ConfigMapKeyRef != nil {
					cm, ok := m.configMaps[ref.ConfigMapKeyRef.Name]
					if _, has := cm.Data[ref.ConfigMapKeyRef.Key]; !ok || !has {
						t.Errorf("%s: %s from ConfigMap %s key %s, which the overlay does not render", d.Name, e.Name, ref.ConfigMapKeyRef.Name, ref.ConfigMapKeyRef.Key)
					}
				}
			case slices.Contains(runtimeVars, e.Name):
			default:
				t.Errorf("%s sets %s, which is neither one of its flags nor one of its secrets (%v)", d.Name, e.Name, secrets)
			}
		}
		if len(c.EnvFrom) > 0 {
			t.Errorf("%s takes whole ConfigMaps or Secrets (envFrom): each variable must be named", d.Name)
		}
		for _, v := range spec.Volumes {
			if v.Secret != nil {
				secretNames[v.Secret.SecretName] = true
			}
		}
		// The secrets a stage may reach are those of the parts it uses, and no other.
		var want []string
		if d.Uses&stage.UsesSharePoint != 0 {
			want = append(want, "amrpipe-sharepoint")
		}
		if d.Uses&stage.UsesStorage != 0 {
			want = append(want, "amrpipe-storage")
		}
		if d.Uses&stage.UsesKEK != 0 {
			want = append(want, "amrpipe-kek")
		}
		got := slices.Sorted(func(yield func(string) bool) {
			for n := range secretNames {
				if !yield(n) {
					return
				}
			}
		})
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s reaches Secrets %v, want exactly %v", d.Name, got, want)
		}
	}
}

// TestPodsRunRestricted: every pod of the overlay runs as a non-root user with a read-only root
// file system, no capabilities, no privilege escalation, the runtime's seccomp profile, the
// ServiceAccount without a token, requests and a memory limit (the restricted Pod Security
// Standard the namespace enforces, and what a scheduler needs).
func TestPodsRunRestricted(t *testing.T) {
	m := render(t, filepath.Join("overlays", "example"))
	pods := map[string]corev1.PodSpec{}
	for name, d := range m.deployments {
		pods["Deployment "+name] = d.Spec.Template.Spec
	}
	for name, j := range m.jobs {
		pods["Job "+name] = j.Spec.Template.Spec
	}
	for name, p := range pods {
		sc := p.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod security context %+v, want runAsNonRoot and seccomp RuntimeDefault", name, sc)
		}
		if _, ok := m.accounts[p.ServiceAccountName]; !ok {
			t.Errorf("%s runs as ServiceAccount %q, which the overlay does not render", name, p.ServiceAccountName)
		}
		if p.AutomountServiceAccountToken == nil || *p.AutomountServiceAccountToken {
			t.Errorf("%s mounts a Kubernetes API token it never uses", name)
		}
		for _, c := range p.Containers {
			cs := c.SecurityContext
			if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
				cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(cs.Capabilities.Add) > 0 {
				t.Errorf("%s container %s: security context %+v, want a read-only root, no escalation, all capabilities dropped", name, c.Name, cs)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s container %s: resources %+v, want cpu and memory requests and a memory limit", name, c.Name, c.Resources)
			}
		}
	}
}

// TestProbesHitTheStagesEndpoints runs every stage's program as its binary does and asks each
// probe of its Deployment, on the port the probe names: liveness and readiness answer 200 from a
// ready stage.
func TestProbesHitTheStagesEndpoints(t *testing.T) {
	m := render(t, filepath.Join("overlays", "example"))
	js := testenv.StartJetStream(t)
	for _, d := range registry.All() {
		t.Run(d.Name, func(t *testing.T) {
			dep, ok := m.deployments[d.Name]
			if !ok {
				t.Fatalf("stage %s has no Deployment", d.Name)
			}
			c := dep.Spec.Template.Spec.Containers[0]
			// The port the stage listens on is the one its container declares under the probe's name.
			var addr string
			for _, e := range c.Env {
				if e.Name == flagenv.EnvName(stage.EnvPrefix, "http-addr") {
					addr = e.Value
				}
			}
			_, listen, err := net.SplitHostPort(addr)
			if err != nil {
				t.Fatalf("AMR_HTTP_ADDR %q: %v", addr, err)
			}
			sm := testenv.StartStage(t, js, d)
			_, served, err := net.SplitHostPort(sm.Runtime().Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			for what, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("no HTTP %s probe", what)
					continue
				}
				if port := containerPort(c, p.HTTPGet.Port); fmt.Sprint(port) != listen {
					t.Errorf("%s probe on port %v (%d), the stage listens on %s", what, p.HTTPGet.Port.String(), port, listen)
				}
				resp, err := http.Get("http://" + net.JoinHostPort("127.0.0.1", served) + p.HTTPGet.Path)
				if err != nil {
					t.Fatalf("%s probe %s: %v", what, p.HTTPGet.Path, err)
				}
				var body bytes.Buffer
				_, _ = body.ReadFrom(resp.Body)
				if err := resp.Body.Close(); err != nil {
					t.Error(err)
				}
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s probe %s: %s %q from a ready stage", what, p.HTTPGet.Path, resp.Status, body.String())
				}
			}
		})
	}
}

// containerPort resolves a probe's port (a number or a port name) against the container's ports.
func containerPort(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

// TestNATSValues: the Helm values run what the topology Job asks for: a 3-server cluster with
// JetStream on persistent file storage, the monitoring port KEDA's scaler reads, on the server
// version go.mod tests against.
func TestNATSValues(t *testing.T) {
	data, err := os.ReadFile("nats-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Only the fields checked here; the chart validates the rest at install.
	var v struct {
		Config struct {
			Cluster struct {
				Enabled  bool `json:"enabled"`
				Replicas int  `json:"replicas"`
			} `json:"cluster"`
			JetStream struct {
				Enabled   bool `json:"enabled"`
				FileStore struct {
					Enabled bool `json:"enabled"`
					PVC     struct {
						Enabled bool   `json:"enabled"`
						Size    string `json:"size"`
					} `json:"pvc"`
				} `json:"fileStore"`
			} `json:"jetstream"`
			Monitor struct {
				Enabled bool `json:"enabled"`
				Port    int  `json:"port"`
			} `json:"monitor"`
		} `json:"config"`
		Container struct {
			Image struct {
				Tag string `json:"tag"`
			} `json:"image"`
		} `json:"container"`
	}
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	c := v.Config
	if !c.Cluster.Enabled || c.Cluster.Replicas != 3 || !c.JetStream.Enabled || !c.JetStream.FileStore.Enabled || !c.JetStream.FileStore.PVC.Enabled || c.JetStream.FileStore.PVC.Size == "" {
		t.Errorf("NATS values %+v: want a 3-server cluster with JetStream on persistent volumes", c)
	}
	m := render(t, filepath.Join("overlays", "example"))
	for name, so := range m.scaled {
		for _, tr := range so.Spec.Triggers {
			if ep := tr.Metadata["natsServerMonitoringEndpoint"]; ep != "" && !strings.HasSuffix(ep, fmt.Sprintf(":%d", c.Monitor.Port)) {
				t.Errorf("ScaledObject %s reads %s, the servers monitor on port %d (enabled %v)", name, ep, c.Monitor.Port, c.Monitor.Enabled)
			}
		}
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/nats-io/nats-server/v2").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimPrefix(strings.TrimSpace(string(out)), "v"); !strings.HasPrefix(v.Container.Image.Tag, want) {
		t.Errorf("NATS image %q, want the tested server %s", v.Container.Image.Tag, want)
	}
}
