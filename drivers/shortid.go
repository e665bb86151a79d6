package drivers

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/docker/docker/daemon/logger"
	"github.com/docker/docker/daemon/logger/templates"
)

// Docker's Info.ID and Info.ImageID slice the ids to 12 characters, and
// journald's driver slices ContainerID too: with a shorter id (containerd
// lets a container be called "web") they fail or panic. dockerlogger takes
// ids of any length, so for a short id it renders the tag itself, with .ID
// the whole id, and hands the driver the result.

// tagDrivers use Docker's default tag {{.ID}} when none is given.
var tagDrivers = map[string]bool{"syslog": true, "fluentd": true, "gelf": true, "journald": true, "splunk": true}

// safeInfo is what a tag template sees: Docker's Info, with the ids whole
// when they are shorter than 12 characters.
type safeInfo struct{ *logger.Info }

func (s safeInfo) ID() string      { return short(s.ContainerID) }
func (s safeInfo) ImageID() string { return short(s.ContainerImageID) }

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// fixShortIDs prepares info for a driver when an id is shorter than 12
// characters. It returns an error for a tag template that does not parse.
func fixShortIDs(driver string, info *logger.Info) error {
	if len(info.ContainerID) >= 12 && (info.ContainerImageID == "" || len(info.ContainerImageID) >= 12) {
		return nil
	}
	return renderTag(driver, info)
}

// renderTag replaces the tag option by its rendering, where the driver
// uses a tag.
func renderTag(driver string, info *logger.Info) error {
	tag, set := info.Config["tag"]
	if !set && !tagDrivers[driver] {
		return nil
	}
	if !set || tag == "" {
		tag = "{{.ID}}"
	}
	tmpl, err := templates.NewParse("log-tag", tag)
	if err != nil {
		return fmt.Errorf("log-opt tag=%q: %w", tag, err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, safeInfo{info}); err != nil {
		return fmt.Errorf("log-opt tag=%q: %w", tag, err)
	}
	// The driver parses the tag as a template again: keep it literal.
	info.Config["tag"] = strings.ReplaceAll(b.String(), "{{", `{{"{{"}}`)
	if driver == "journald" && len(info.ContainerID) < 12 {
		// journald's driver takes CONTAINER_ID as ContainerID[:12]: pad
		// the id so it cannot panic. Its fields then carry the padding.
		info.ContainerID += strings.Repeat("_", 12-len(info.ContainerID))
	}
	return nil
}
