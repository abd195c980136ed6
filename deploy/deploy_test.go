// Package deploy_test checks the deployment files against the code they deploy. There is no
// Docker engine on the build machines, so docker-compose.yml is loaded with the compose
// specification's own Go loader (what `docker compose` runs) and every service is compared with
// its row of the stage table: flags, secrets, health, start order, grace period, volumes, ports.
package deploy_test

import (
	"context"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
	"gopkg.in/yaml.v3"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/registry"
)

const root = ".."

// secretEnv is the variable each compose secret holds for the services (nats_password_<user> is
// the user's AMR_NATS_PASSWORD). The SharePoint certificate's password and the KEK's id are
// optional secrets the simulator stack does not use.
func secretEnv(secret string) string {
	if strings.HasPrefix(secret, "nats_password_") {
		return svc.NATSPasswordEnv
	}
	return map[string]string{"amr_kek": keywrap.EnvKEK, "amr_storage_key": storage.KeyEnv, "amr_sp_token": spo.TokenEnv}[secret]
}

// optionalSecrets are secrets a stage reads when they are set and the stack leaves unset.
var optionalSecrets = []string{spo.CertPasswordEnv, keywrap.EnvKEKID}

// loadCompose loads docker-compose.yml as `docker compose` does, with .env.example as the
// environment, every profile enabled, and returns the variables it read.
func loadCompose(t *testing.T) (*types.Project, map[string]string, map[string]bool) {
	t.Helper()
	env, err := dotenv.Read(filepath.Join(root, ".env.example"))
	if err != nil {
		t.Fatalf(".env.example: %v", err)
	}
	read := map[string]bool{}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: maps.Clone(env), // the loader adds COMPOSE_PROJECT_NAME to it
	}, func(o *loader.Options) {
		o.SetProjectName("amrpipe", true)
		o.Profiles = []string{"*"}
		lookup := o.Interpolate.LookupValue
		o.Interpolate.LookupValue = func(k string) (string, bool) {
			read[k] = true
			return lookup(k)
		}
	})
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p, env, read
}

func TestComposeLoadsWithEveryVariableInEnvExample(t *testing.T) {
	p, env, read := loadCompose(t)
	for k := range read {
		if _, ok := env[k]; !ok {
			t.Errorf("docker-compose.yml reads %s, which .env.example does not list", k)
		}
	}
	for name, s := range p.Secrets {
		if s.Environment == "" {
			t.Errorf("secret %s: not from the environment (.env)", name)
		} else if _, ok := env[s.Environment]; !ok {
			t.Errorf("secret %s comes from %s, which .env.example does not list", name, s.Environment)
		}
	}
	for k := range env {
		if !read[k] && !slices.ContainsFunc(slices.Collect(mapValues(p.Secrets)), func(s types.SecretConfig) bool { return s.Environment == k }) {
			t.Errorf(".env.example lists %s, which docker-compose.yml never reads", k)
		}
	}
}

func mapValues[K comparable, V any](m map[K]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// TestComposeRunsEveryStage: each stage of the table is a service built from its directory,
// setting only variables the stage reads, given exactly the secrets it needs as files, healthy
// on /readyz, started after the topology step and the NATS cluster, stopped after its drain.
func TestComposeRunsEveryStage(t *testing.T) {
	p, _, _ := loadCompose(t)
	hostPorts := map[string]string{}
	for name, s := range p.Services {
		for _, port := range s.Ports {
			if port.Published == "" {
				continue
			}
			if other, dup := hostPorts[port.Published]; dup {
				t.Errorf("host port %s published by %s and %s", port.Published, other, name)
			}
			hostPorts[port.Published] = name
		}
	}
	for _, d := range registry.All() {
		t.Run(d.Name, func(t *testing.T) {
			s, ok := p.Services[d.Name]
			if !ok {
				t.Fatalf("no service %s", d.Name)
			}
			if s.Build == nil || s.Build.Args["SERVICE"] == nil || *s.Build.Args["SERVICE"] != d.Name {
				t.Errorf("build %+v, want deploy/Dockerfile with SERVICE=%s", s.Build, d.Name)
			} else if _, err := os.Stat(filepath.Join(root, "services", d.Name, "main.go")); err != nil {
				t.Error(err)
			}
			flags := d.FlagSet(&stage.Config{}, d.NewConfig())
			known := map[string]bool{}
			flags.VisitAll(func(f *flag.Flag) { known[flagenv.EnvName(stage.EnvPrefix, f.Name)] = true })
			secrets := d.Secrets()
			// Variables: a flag's, or the file variable of one of its secrets; never a secret itself.
			files := map[string]string{}
			for k, v := range s.Environment {
				switch base, isFile := strings.CutSuffix(k, flagenv.FileSuffix); {
				case !strings.HasPrefix(k, stage.EnvPrefix+"_"):
				case known[k]:
				case isFile && slices.Contains(secrets, base):
					files[base] = deref(v)
				case slices.Contains(secrets, k):
					t.Errorf("sets secret %s in its environment, want %s%s naming a secret file", k, k, flagenv.FileSuffix)
				default:
					t.Errorf("sets %s, which %s does not read", k, d.Name)
				}
			}
			// Secrets: exactly those it reads and the stack supplies, each named by its _FILE variable.
			var got, want []string
			for _, ref := range s.Secrets {
				env := secretEnv(ref.Source)
				if env == "" {
					t.Errorf("secret %s holds no variable of the stages", ref.Source)
					continue
				}
				got = append(got, env)
				if files[env] != "/run/secrets/"+ref.Source {
					t.Errorf("secret %s: %s%s is %q, want /run/secrets/%s", ref.Source, env, flagenv.FileSuffix, files[env], ref.Source)
				}
				if env == svc.NATSPasswordEnv && ref.Source != "nats_password_"+strings.ReplaceAll(d.Name, "-", "_") {
					t.Errorf("NATS password from secret %s, want the stage's own", ref.Source)
				}
			}
			for _, sec := range secrets {
				if !slices.Contains(optionalSecrets, sec) {
					want = append(want, sec)
				}
			}
			if !slices.Equal(sorted(got), sorted(want)) {
				t.Errorf("given secrets %v, want exactly %v", sorted(got), sorted(want))
			}
			if deref(s.Environment[flagenv.EnvName(stage.EnvPrefix, "nats-user")]) != d.Name {
				t.Errorf("connects as NATS user %q, want its own %q", deref(s.Environment["AMR_NATS_USER"]), d.Name)
			}
			if v := deref(s.Environment["AMR_APPLY_TOPOLOGY"]); v != "" && v != "false" {
				t.Errorf("AMR_APPLY_TOPOLOGY=%s: only the topology step applies it", v)
			}
			// Default images have no gRPC exporter (svc: -tags otlpgrpc): a service told to use
			// it refuses to start.
			if p := deref(s.Environment["OTEL_EXPORTER_OTLP_PROTOCOL"]); p == "grpc" {
				t.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=grpc: the default images export OTLP over http/protobuf only")
			}
			if deref(s.Environment["AMR_REPLICAS"]) != "3" {
				t.Errorf("AMR_REPLICAS %q, want 3 (the cluster's R3)", deref(s.Environment["AMR_REPLICAS"]))
			}
			// Health and start order.
			if s.HealthCheck == nil || !strings.Contains(strings.Join(s.HealthCheck.Test, " "), "/service "+svc.HealthcheckCommand+" http://127.0.0.1:8080/readyz") {
				t.Errorf("healthcheck %v, want the binary probing its /readyz", s.HealthCheck)
			}
			if deref(s.Environment["AMR_HTTP_ADDR"]) != ":8080" {
				t.Errorf("AMR_HTTP_ADDR %q, want :8080 (probed and scraped)", deref(s.Environment["AMR_HTTP_ADDR"]))
			}
			wantDeps := map[string]string{"nats1": types.ServiceConditionHealthy, "nats2": types.ServiceConditionHealthy,
				"nats3": types.ServiceConditionHealthy, "topology": types.ServiceConditionCompletedSuccessfully}
			for dep, cond := range wantDeps {
				if s.DependsOn[dep].Condition != cond {
					t.Errorf("depends on %s %q, want %q", dep, s.DependsOn[dep].Condition, cond)
				}
			}
			if slices.ContainsFunc(d.Secrets(), func(s string) bool { return s == storage.KeyEnv }) &&
				s.DependsOn["azurite"].Condition != types.ServiceConditionHealthy {
				t.Errorf("uses storage but does not wait for a healthy azurite")
			}
			// Grace: the consumers' drain, then the NATS connection's, both -drain-timeout.
			drain, err := time.ParseDuration(flags.Lookup("drain-timeout").DefValue)
			if err != nil {
				t.Fatal(err)
			}
			if v := deref(s.Environment["AMR_DRAIN_TIMEOUT"]); v != "" {
				if drain, err = time.ParseDuration(v); err != nil {
					t.Fatal(err)
				}
			}
			if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= 2*drain {
				t.Errorf("stop_grace_period %v, want more than twice the drain timeout %v", s.StopGracePeriod, drain)
			}
			// Metrics on the host.
			if !slices.ContainsFunc(s.Ports, func(p types.ServicePortConfig) bool { return p.Target == 8080 && p.Published != "" }) {
				t.Errorf("ports %v: metrics port 8080 not published", s.Ports)
			}
		})
	}
	if len(p.Services[topologyService].Secrets) != 1 {
		t.Errorf("topology step secrets %v, want the admin password only", p.Services[topologyService].Secrets)
	}
}

const topologyService = "topology"

// TestComposeRunsTheClusterAndTheTools: the NATS nodes run the tested server's version on volumes,
// the topology is applied once as the admin user, amrctl has an image, and the observability
// services are wired to their configuration.
func TestComposeRunsTheClusterAndTheTools(t *testing.T) {
	p, _, _ := loadCompose(t)
	opts, _ := loadNATSConf(t)
	major, minor, _ := strings.Cut(server.VERSION, ".")
	minor, _, _ = strings.Cut(minor, ".")
	wantImage := "nats:" + major + "." + minor + "-alpine"
	for _, n := range []string{"nats1", "nats2", "nats3"} {
		s := p.Services[n]
		if s.Image != wantImage {
			t.Errorf("%s runs %s, want %s (nats-server %s in go.mod)", n, s.Image, wantImage, server.VERSION)
		}
		if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Type == types.VolumeTypeVolume && v.Target == opts.StoreDir
		}) {
			t.Errorf("%s: no named volume on its JetStream store %s", n, opts.StoreDir)
		}
		if s.HealthCheck == nil || !strings.Contains(strings.Join(s.HealthCheck.Test, " "), ":8222/healthz?js-enabled-only=true") {
			t.Errorf("%s healthcheck %v, want the monitoring port's /healthz", n, s.HealthCheck)
		}
		for _, u := range append([]string{adminUser}, stageNames()...) {
			if _, ok := s.Environment[passwordVar(u)]; !ok {
				t.Errorf("%s: no %s for user %s", n, passwordVar(u), u)
			}
		}
	}
	published := func(service string, port uint32) bool {
		return slices.ContainsFunc(p.Services[service].Ports, func(pc types.ServicePortConfig) bool { return pc.Target == port && pc.Published != "" })
	}
	if !published("nats1", 4222) || !published("nats1", 8222) {
		t.Errorf("nats1 ports %v, want client 4222 and monitoring 8222 published", p.Services["nats1"].Ports)
	}
	az := p.Services["azurite"]
	if !slices.Contains(az.Command, "/data") || !slices.ContainsFunc(az.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Target == "/data"
	}) || az.HealthCheck == nil {
		t.Errorf("azurite: want its --location /data on a named volume and a healthcheck")
	}

	topo := p.Services[topologyService]
	if topo.Build == nil || topo.Build.Target != "amrctl" || !strings.Contains(strings.Join(topo.Command, " "), "topology apply --replicas 3") {
		t.Errorf("topology step: build %+v command %v, want amrctl topology apply --replicas 3", topo.Build, topo.Command)
	}
	if deref(topo.Environment["AMR_NATS_USER"]) != adminUser {
		t.Errorf("topology step connects as %q, want %s", deref(topo.Environment["AMR_NATS_USER"]), adminUser)
	}
	if ctl, ok := p.Services["amrctl"]; !ok || ctl.Build == nil || ctl.Build.Target != "amrctl" {
		t.Errorf("no amrctl service built from the amrctl target")
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^FROM \S+ AS amrctl$`).Match(dockerfile) {
		t.Errorf("deploy/Dockerfile has no amrctl target")
	}

	for _, want := range []struct{ service, mount string }{
		{"otel-collector", "./deploy/otel/collector.yaml"},
		{"prometheus", "./deploy/prometheus"},
		{"grafana", "./deploy/grafana/provisioning"},
		{"grafana", "./deploy/grafana/dashboards"},
	} {
		s, ok := p.Services[want.service]
		if !ok {
			t.Errorf("no %s service", want.service)
			continue
		}
		src, _ := filepath.Abs(filepath.Join(root, want.mount))
		if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
			abs, _ := filepath.Abs(v.Source)
			return abs == src && v.ReadOnly
		}) {
			t.Errorf("%s does not mount %s read-only", want.service, want.mount)
		}
	}
	for _, s := range p.Services {
		if strings.Contains(s.Image, ":latest") || (s.Build == nil && !strings.Contains(s.Image, ":")) {
			t.Errorf("service %s: image %q not pinned", s.Name, s.Image)
		}
	}
}

// TestPrometheusScrapesEveryStage: one job per stage on the port of its /metrics, and the alert
// rules file loaded.
func TestPrometheusScrapesEveryStage(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName      string `yaml:"job_name"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cfg.RuleFiles, "/etc/prometheus/alerts.yml") {
		t.Errorf("rule_files %v, want /etc/prometheus/alerts.yml (deploy/prometheus/alerts.yml)", cfg.RuleFiles)
	}
	if _, err := os.Stat(filepath.Join("prometheus", "alerts.yml")); err != nil {
		t.Error(err)
	}
	for _, name := range stageNames() {
		if !slices.ContainsFunc(cfg.ScrapeConfigs, func(sc struct {
			JobName      string `yaml:"job_name"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		}) bool {
			return sc.JobName == name && len(sc.DNSSDConfigs) == 1 && slices.Equal(sc.DNSSDConfigs[0].Names, []string{name}) && sc.DNSSDConfigs[0].Port == 8080
		}) {
			t.Errorf("no scrape job for %s on %s:8080", name, name)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
