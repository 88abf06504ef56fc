package policy

import (
	"strings"
	"testing"
)

func TestPassthroughPathParameters(t *testing.T) {
	tests := []struct {
		name, path, problem string // problem "" means valid
	}{
		{"a whole-segment parameter is accepted", "/export/task/{taskId}", ""},
		{"a parameter followed by a fixed segment is accepted", "/export/task/{taskId}/result", ""},
		{"a parameter inside a segment is refused", "/export/task-{taskId}", "wildcard or pattern"},
		{"a parameter with a pattern is refused", "/export/task/{taskId:.*}", "wildcard or pattern"},
		{"an empty parameter is refused", "/export/task/{}", "wildcard or pattern"},
		{"a parameter name with a digit is refused", "/export/task/{id1}", "wildcard or pattern"},
		{"an unclosed parameter is refused", "/export/task/{taskId", "wildcard or pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := strings.Replace(basePolicy, "path: /status,", "path: \""+tt.path+"\",", 1)
			if yaml == basePolicy {
				t.Fatal("the base policy has no passthrough path to replace")
			}
			_, probs := lintBytes([]byte(yaml), LintOptions{})
			got := listProblems(probs)
			if tt.problem == "" && len(probs) > 0 || tt.problem != "" && !strings.Contains(got, tt.problem) {
				t.Fatalf("got problems %q, want %q", got, tt.problem)
			}
		})
	}
}

func TestInjectionRoutePathParametersAreRefused(t *testing.T) {
	yaml := strings.Replace(basePolicy, "path: /payout\n", "path: /payout/{id}\n", 1)
	_, probs := lintBytes([]byte(yaml), LintOptions{})
	if got := listProblems(probs); !strings.Contains(got, "routes[1].path") || !strings.Contains(got, "wildcard or pattern") {
		t.Fatalf("got problems %q, want routes[1].path refused as a pattern", got)
	}
}
