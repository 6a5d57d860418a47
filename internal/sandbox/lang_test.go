package sandbox

import "testing"

func TestParseCodeLang(t *testing.T) {
	for in, want := range map[string]Lang{"py": Python, "JS": JavaScript, "bash": Shell} {
		if got, err := ParseCodeLang(in); err != nil || got != want {
			t.Errorf("ParseCodeLang(%q) = %q, %v", in, got, err)
		}
	}
	// A model names code to run, never a command line or one of Hive's
	// own programs.
	for _, in := range []string{"exec", testProgram.Name, "ruby", ""} {
		if got, err := ParseCodeLang(in); err == nil {
			t.Errorf("ParseCodeLang(%q) = %q, want an error", in, got)
		}
	}
}
