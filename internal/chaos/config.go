package chaos

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// Environment variables of the suite.
const (
	// EnvMode selects the mode: "full" (make chaos); anything else is the short mode.
	EnvMode = "AMRPIPE_CHAOS"
	// EnvSeed replays a run: its kill schedule, downtimes, storm start and victims.
	EnvSeed = "AMRPIPE_CHAOS_SEED"
	// EnvReport names a file the report's markdown is written to.
	EnvReport = "AMRPIPE_CHAOS_REPORT"
	// EnvKeep keeps the run's directory (logs, JetStream store, Azurite) even when it passed.
	EnvKeep = "AMRPIPE_CHAOS_KEEP"
	// EnvRace builds the programs with the race detector (slower to build and to run).
	EnvRace = "AMRPIPE_CHAOS_RACE"
)

// Config is one run of the suite.
type Config struct {
	// Mode names the run ("short" or "full").
	Mode string
	// Seed drives every random choice of the run.
	Seed int64
	// Profile is the simulator's built-in tenant ("default" or "small"); the harness computes
	// the ground truth from the same profile.
	Profile string
	// Plans are submitted at the start (made incremental, so that change tokens are committed).
	Plans func(siteURL func(string) string) []*amrpipev1.PlanRequest
	// Small and Large are the planner's thresholds.
	Small, Large int64
	// MaxManifestMiB is the simulator's manifest split size.
	MaxManifestMiB int
	// SimRate (objects/s per job, 0 unlimited) and SimWorkers shape the simulator's export.
	SimRate    float64
	SimWorkers int
	// PollInterval is the relay's progress polling interval.
	PollInterval time.Duration
	// MinObjects is the least number of content objects the plans must cover.
	MinObjects int

	// Kills is how many times a random stage process is killed with SIGKILL and started again.
	Kills int
	// KillGap is the range of the pause before each kill; Down the range of how long a killed
	// stage stays down.
	KillGap, Down [2]time.Duration
	// NATSRestartAfter is the kill after which nats-server is killed and started again (on the same
	// port and store); negative: never.
	NATSRestartAfter int
	// StormDelay is when the 503 storm starts, after the first records; Storm how long it lasts.
	StormDelay, Storm time.Duration
	// ThrottleBudget is the decryptor's -throttle-budget: the storm must fit in it, the victims
	// outlast it.
	ThrottleBudget time.Duration
	// VictimCandidates are server-relative target URLs of jobs whose blobs may fail for good;
	// Victims of them are drawn. A job is a victim when one of its URLs is a drawn one.
	VictimCandidates []string
	Victims          int
	// VictimFile, if set, is the only blob of a victim job that fails (else every blob).
	VictimFile string

	// Race builds the programs with the race detector.
	Race bool
	// Timeout bounds the whole run.
	Timeout time.Duration
	// Progress receives a line now and then while the run goes on (nil: none).
	Progress io.Writer
}

// ShortConfig is the subset `make test` runs: the small tenant, four kills, a nats-server
// restart, a storm of a few seconds, one blob that always fails and each forgery once.
func ShortConfig(seed int64) Config {
	return Config{
		Mode: "short", Seed: seed, Profile: "small",
		Plans: func(siteURL func(string) string) []*amrpipev1.PlanRequest {
			return []*amrpipev1.PlanRequest{testenv.SmallPlan(siteURL, "chaos-small", true)}
		},
		Small: testenv.SmallProfileSmall, Large: testenv.SmallProfileLarge, MaxManifestMiB: 1,
		SimRate: 400, SimWorkers: 4, PollInterval: 250 * time.Millisecond, MinObjects: 2000,
		Kills: 4, KillGap: [2]time.Duration{time.Second, 4 * time.Second}, Down: [2]time.Duration{500 * time.Millisecond, 2 * time.Second},
		NATSRestartAfter: 2, StormDelay: time.Second, Storm: 5 * time.Second, ThrottleBudget: 20 * time.Second,
		VictimCandidates: []string{"/sites/small/Lists/Tasks", "/sites/small/team/Notes", "/sites/small/Shared Documents/Big",
			"/sites/small/Shared Documents/Team-0003"},
		Victims: 1, VictimFile: "Manifest.xml",
		Timeout: 8 * time.Minute,
	}
}

// FullConfig is `make chaos`: the demo's plans over the default tenant (about 218K content
// objects), twenty-two kills, a nats-server restart, a 25-second storm, every blob of two jobs
// failing, and the forgeries.
func FullConfig(seed int64) Config {
	return Config{
		Mode: "full", Seed: seed, Profile: "default",
		Plans: func(siteURL func(string) string) []*amrpipev1.PlanRequest {
			return testenv.DemoPlans(siteURL)
		},
		Small: testenv.DemoSmall, Large: testenv.DemoLarge, MaxManifestMiB: 25,
		SimRate: 0, SimWorkers: 4, PollInterval: 500 * time.Millisecond, MinObjects: 200000,
		Kills: 22, KillGap: [2]time.Duration{2 * time.Second, 6 * time.Second}, Down: [2]time.Duration{500 * time.Millisecond, 2 * time.Second},
		NATSRestartAfter: 11, StormDelay: 15 * time.Second, Storm: 25 * time.Second, ThrottleBudget: 90 * time.Second,
		VictimCandidates: []string{"/sites/hr/Lists/Onboarding Tasks", "/sites/engineering/Lists/Issues",
			"/sites/engineering/platform/Lists/Builds", "/sites/archive/Lists/Retention Schedule",
			"/sites/engineering/Shared Documents/Specs"},
		Victims: 2,
		Timeout: 35 * time.Minute,
	}
}

// FromEnv is the configuration the environment asks for (EnvMode, EnvSeed, EnvRace); without a
// seed, one is drawn from the clock (and printed, so that the run can be replayed).
func FromEnv(getenv func(string) string) (Config, error) {
	seed := time.Now().UnixNano() % 1_000_000_000
	if s := getenv(EnvSeed); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			return Config{}, fmt.Errorf("%s=%q: %w", EnvSeed, s, err)
		}
	}
	cfg := ShortConfig(seed)
	if getenv(EnvMode) == "full" {
		cfg = FullConfig(seed)
	}
	cfg.Race = getenv(EnvRace) != ""
	return cfg, nil
}

// tenantProfile is the profile the simulator runs (Config.Profile).
func tenantProfile(name string) (tenant.Profile, error) {
	switch name {
	case "default":
		return tenant.DefaultProfile(), nil
	case "small":
		return tenant.SmallProfile(), nil
	}
	return tenant.Profile{}, fmt.Errorf("unknown profile %q", name)
}
