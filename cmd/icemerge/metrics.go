package main

import (
	"io"
	"time"

	"github.com/icemerge/icemerge"
	"github.com/icemerge/icemerge/internal/clikit"
)

// The values of run's --metrics.
const (
	metricsAuto = "auto"
	metricsEMF  = "emf"
	metricsOff  = "off"
)

// metricsTo is where a run's EMF lines go for --metrics mode, nil when
// they are off. auto is emf where CloudWatch Logs collects the output (AWS
// Lambda, ECS tasks) and off elsewhere, so a person's terminal shows no
// JSON meant for a machine.
func (a *app) metricsTo(mode string) io.Writer {
	switch mode {
	case metricsOff:
		return nil
	case metricsAuto, "":
		if !clikit.OnAWSCompute(a.env) {
			return nil
		}
	}
	if a.metricsOut != nil {
		return a.metricsOut
	}
	return a.stderr
}

// writeMetrics writes the EMF line of a table's run to w (nil: metrics
// off).
func (a *app) writeMetrics(w io.Writer, table string, res *icemerge.Result, err error) {
	if w != nil {
		line, merr := icemerge.EMF(table, res, err, time.Now())
		clikit.WriteEMF(w, a.log, table, line, merr)
	}
}
