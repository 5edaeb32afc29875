package main

import (
	"io"
	"time"

	"github.com/icemerge/icemerge"
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
		if !onAWSCompute(a.env) {
			return nil
		}
	}
	if a.metricsOut != nil {
		return a.metricsOut
	}
	return a.stderr
}

// onAWSCompute reports whether the process runs on AWS Lambda or as an ECS
// task (Fargate or EC2), by the variables their agents set.
func onAWSCompute(env func(string) (string, bool)) bool {
	for _, k := range []string{"AWS_LAMBDA_FUNCTION_NAME", "ECS_CONTAINER_METADATA_URI_V4", "ECS_CONTAINER_METADATA_URI"} {
		if v, ok := env(k); ok && v != "" {
			return true
		}
	}
	return false
}

// writeMetrics writes the EMF line of a table's run to w (nil: metrics
// off) in one write, so the line is one log event of its own even beside
// the log's lines. A line that cannot be built is logged, never fails the
// run.
func (a *app) writeMetrics(w io.Writer, table string, res *icemerge.Result, err error) {
	if w == nil {
		return
	}
	line, merr := icemerge.EMF(table, res, err, time.Now())
	if merr == nil {
		_, merr = w.Write(append(line, '\n'))
	}
	if merr != nil {
		a.log.Warn("writing the run's metrics failed", "table", table, "error", merr)
	}
}
