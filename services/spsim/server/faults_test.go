package server

import "testing"

func TestValidateRulesObjectIssuesNeedAMatch(t *testing.T) {
	tests := []struct {
		rule Rule
		ok   bool
	}{
		{Rule{Job: "object-error", Match: "Team-0003/"}, true},
		{Rule{Job: "object-warning", Match: "Drafts/", Code: -2147286782, Message: "gone"}, true},
		{Rule{Job: "object-error"}, false},
		{Rule{Job: "object-warning"}, false},
		{Rule{Job: "object-notice", Match: "x"}, false},
	}
	for _, tt := range tests {
		if err := validateRules([]Rule{tt.rule}); (err == nil) != tt.ok {
			t.Errorf("validateRules(%+v) = %v, want ok %v", tt.rule, err, tt.ok)
		}
	}
}
