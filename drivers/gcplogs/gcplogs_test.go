package gcplogs

import (
	"reflect"
	"testing"
)

// What Google's client derives from a project and a version, as this
// driver must derive it too (the end-to-end test compares whole requests).
func TestGoogleRules(t *testing.T) {
	for in, want := range map[string]string{"my-project": "projects/my-project", "folders/123": "folders/123"} {
		if got, err := makeParent(in); err != nil || got != want {
			t.Errorf("makeParent(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := makeParent(detectProjectID); err == nil {
		t.Errorf("makeParent(%q): no error off Google Cloud", detectProjectID)
	}
	for parent, want := range map[string]resource{
		"projects/p":        {Type: "project", Labels: map[string]string{"project_id": "p"}},
		"folders/7":         {Type: "folder", Labels: map[string]string{"folder_id": "7"}},
		"billingAccounts/b": {Type: "billing_account", Labels: map[string]string{"account_id": "b"}},
		"other/x":           {Type: "global", Labels: map[string]string{"project_id": "x"}},
	} {
		if got := monitoredResource(parent); !reflect.DeepEqual(*got, want) {
			t.Errorf("monitoredResource(%q) = %+v, want %+v", parent, *got, want)
		}
	}
	for status, want := range map[string]string{"PERMISSION_DENIED": "PermissionDenied", "UNAVAILABLE": "Unavailable", "DEADLINE_EXCEEDED": "DeadlineExceeded"} {
		if got := codeName(status); got != want {
			t.Errorf("codeName(%q) = %q, want %q", status, got, want)
		}
	}
	if err := ValidateLogOpts(map[string]string{"gcp-bogus": "1"}); err == nil || err.Error() != `"gcp-bogus" is not a valid option for the gcplogs driver` {
		t.Errorf("ValidateLogOpts: %v", err)
	}
}
