// Package prometheus holds the checks of the alert rules (alerts.yml) and of the Grafana dashboard
// (../grafana/dashboards/amrpipe.json): both load as Prometheus and Grafana would load them, and
// every metric they query is one the stages really export, collected from the registries of the
// five stages run as their binaries run them.
package prometheus

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/amrpipe/amrpipe/pkg/stage/registry"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// exportedMetrics returns the name of every metric the five stages register, read from their
// running registries (Registry.Describe lists a vector before it has a series; /metrics does not).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	js := testenv.StartJetStream(t)
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for _, d := range registry.All() {
		m := testenv.StartStage(t, js, d)
		descs := make(chan *prometheus.Desc)
		go func() {
			m.Runtime().Registry.Describe(descs)
			close(descs)
		}()
		for desc := range descs {
			match := fqName.FindStringSubmatch(desc.String())
			if match == nil {
				t.Fatalf("%s: no name in %s", d.Name, desc)
			}
			names[match[1]] = true
		}
	}
	if !names["amr_stage_messages_total"] || !names["amr_relay_followed_jobs"] || !names["amr_parser_records_total"] {
		t.Fatalf("the stages' registries list %d metrics, without the stage, relay or parser ones", len(names))
	}
	return names
}

// known: a name the stages export, or a series Prometheus derives from a histogram or summary.
func known(exported map[string]bool, name string) bool {
	if exported[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] {
			return true
		}
	}
	return false
}

// metricNames returns the metric names an expression selects; an expression that does not parse
// is an error.
func metricNames(p parser.Parser, expr string) ([]string, error) {
	e, err := p.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names, nil
}

// loadRules parses alerts.yml as Prometheus does at startup: unknown fields refused, every
// expression parsed, every template checked.
func loadRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.ParseFile("alerts.yml", false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil {
		t.Fatal("alerts.yml: no rule groups")
	}
	return groups
}

// TestAlertRules: the rules load, each has a severity and a summary, and together they cover
// what an operator must hear of: SharePoint throttling past Microsoft's escalation point,
// growing lag, dead letters, stuck handlers and stalled jobs, filling streams.
func TestAlertRules(t *testing.T) {
	groups := loadRules(t)
	p := parser.NewParser(parser.Options{})
	var alerts []string
	uses := map[string][]string{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a recording rule %q; this file holds alerts", g.Name, r.Record)
				continue
			}
			alerts = append(alerts, r.Alert)
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s has no summary", r.Alert)
			}
			names, err := metricNames(p, r.Expr)
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
			}
			uses[r.Alert] = names
		}
	}
	for _, want := range []struct{ alert, metric string }{
		{"AmrSharePointThrottledOver30Percent", "amr_sharepoint_responses_total"},
		{"AmrConsumerLagGrowing", "amr_stage_consumer_pending"},
		{"AmrDeadLetters", "amr_stage_messages_total"},
		{"AmrHandlersStuck", "amr_stage_handlers_stuck"},
		{"AmrJobsStalled", "amr_parser_jobs_stalled_total"},
		{"AmrStreamFilling", "amr_stream_max_bytes"},
	} {
		if !slices.Contains(uses[want.alert], want.metric) {
			t.Errorf("alert %s is missing or does not read %s (alerts: %v)", want.alert, want.metric, alerts)
		}
	}
	var throttled *rulefmt.Rule
	for _, g := range groups.Groups {
		for i, r := range g.Rules {
			if r.Alert == "AmrSharePointThrottledOver30Percent" {
				throttled = &g.Rules[i]
			}
		}
	}
	// Microsoft's rule: more than 30 % of requests throttled over 30 minutes.
	if throttled == nil || !strings.Contains(throttled.Expr, "[30m]") || !strings.Contains(throttled.Expr, "> 0.30") || !strings.Contains(throttled.Expr, `status=~"429|503"`) {
		t.Errorf("the throttling alert is not Microsoft's 30 %%-over-30-minutes rule: %+v", throttled)
	}
}

// dashboard is the part of Grafana's dashboard model this file uses; decoding refuses any other
// field, so a misspelt one fails here instead of being ignored by Grafana.
type dashboard struct {
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	Description   string   `json:"description"`
	Tags          []string `json:"tags"`
	Timezone      string   `json:"timezone"`
	Editable      bool     `json:"editable"`
	SchemaVersion int      `json:"schemaVersion"`
	Version       int      `json:"version"`
	Refresh       string   `json:"refresh"`
	Time          struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Label string `json:"label"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Collapsed   bool        `json:"collapsed"`
	Datasource  *datasource `json:"datasource"`
	GridPos     struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	} `json:"gridPos"`
	Targets []struct {
		RefID        string      `json:"refId"`
		Expr         string      `json:"expr"`
		LegendFormat string      `json:"legendFormat"`
		Datasource   *datasource `json:"datasource"`
	} `json:"targets"`
	FieldConfig *struct {
		Defaults struct {
			Unit       string   `json:"unit"`
			Min        *float64 `json:"min"`
			Max        *float64 `json:"max"`
			Thresholds *struct {
				Mode  string `json:"mode"`
				Steps []struct {
					Color string   `json:"color"`
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "grafana", "dashboards", "amrpipe.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var d dashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("amrpipe.json: %v", err)
	}
	return d
}

// grafanaVariables are the dashboard's built-in interval variables, as Grafana would substitute
// them before the query reaches Prometheus.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h")

// TestDashboard: the dashboard decodes, its panels have unique ids and do not overlap, every
// query parses as PromQL, and it shows what an operator looks at: per-stage throughput, lag,
// in-flight, errors and dead letters; jobs by state; SharePoint calls and the throttled share per
// host; stream fill.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard uid %q title %q with %d panels", d.UID, d.Title, len(d.Panels))
	}
	p := parser.NewParser(parser.Options{})
	ids := map[int]bool{}
	used := map[string]bool{}
	type cell struct{ x, y int }
	taken := map[cell]int{}
	for _, pn := range d.Panels {
		if ids[pn.ID] {
			t.Errorf("panel id %d twice", pn.ID)
		}
		ids[pn.ID] = true
		for x := pn.GridPos.X; x < pn.GridPos.X+pn.GridPos.W; x++ {
			for y := pn.GridPos.Y; y < pn.GridPos.Y+pn.GridPos.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panel %q overlaps panel %d at %d,%d", pn.Title, other, x, y)
				}
				taken[cell{x, y}] = pn.ID
			}
		}
		if pn.GridPos.X+pn.GridPos.W > 24 {
			t.Errorf("panel %q reaches past the grid's 24 columns", pn.Title)
		}
		if pn.Type == "row" {
			continue
		}
		if len(pn.Targets) == 0 {
			t.Errorf("panel %q has no query", pn.Title)
		}
		for _, tg := range pn.Targets {
			names, err := metricNames(p, grafanaVariables.Replace(tg.Expr))
			if err != nil {
				t.Errorf("panel %q query %s: %v", pn.Title, tg.RefID, err)
			}
			for _, n := range names {
				used[n] = true
			}
		}
	}
	for _, want := range []string{
		"amr_stage_messages_total",                 // throughput, errors and dead letters by outcome
		"amr_stage_consumer_pending",               // lag
		"amr_stage_in_flight",                      // in flight
		"amr_job_transitions_total",                // jobs by state
		"amr_sharepoint_responses_total",           // calls and throttled share per host
		"amr_stream_bytes", "amr_stream_max_bytes", // stream fill
	} {
		if !used[want] {
			t.Errorf("the dashboard shows no %s", want)
		}
	}
}

// TestEveryQueriedMetricIsExported: each metric the rules and the dashboard query is registered
// by a stage, so that no panel stays empty and no alert is silently never evaluated to anything.
func TestEveryQueriedMetricIsExported(t *testing.T) {
	exported := exportedMetrics(t)
	p := parser.NewParser(parser.Options{})
	check := func(where, expr string) {
		names, err := metricNames(p, grafanaVariables.Replace(expr))
		if err != nil {
			t.Errorf("%s: %v", where, err)
		}
		for _, n := range names {
			if !known(exported, n) {
				t.Errorf("%s queries %s, which no stage exports", where, n)
			}
		}
	}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			check("alert "+r.Alert, r.Expr)
		}
	}
	for _, pn := range loadDashboard(t).Panels {
		for _, tg := range pn.Targets {
			check("panel "+pn.Title, tg.Expr)
		}
	}
}
