package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"golang.org/x/time/rate"
)

// LimitsFromEnv reads KILN_RATE_PER_IP and KILN_RATE_PER_USER (requests per
// second, a positive number; "inf" disables the limit) and
// KILN_RATE_IP_BURST and KILN_RATE_USER_BURST (positive integers). Unset
// variables keep the defaults. The error names every bad variable.
func LimitsFromEnv(getenv func(string) string) (Limits, error) {
	var l Limits
	var errs []error
	for _, v := range []struct {
		env string
		dst *rate.Limit
	}{{"KILN_RATE_PER_IP", &l.PerIP}, {"KILN_RATE_PER_USER", &l.PerUser}} {
		s := getenv(v.env)
		if s == "" {
			continue
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || f <= 0 {
			errs = append(errs, fmt.Errorf(`%s must be a positive number of requests per second (or "inf" for no limit), got %q`, v.env, s))
			continue
		}
		*v.dst = rate.Limit(f)
		if math.IsInf(f, 1) {
			*v.dst = rate.Inf
		}
	}
	for _, v := range []struct {
		env string
		dst *int
	}{{"KILN_RATE_IP_BURST", &l.IPBurst}, {"KILN_RATE_USER_BURST", &l.UserBurst}} {
		s := getenv(v.env)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("%s must be a positive integer, got %q", v.env, s))
			continue
		}
		*v.dst = n
	}
	return l.WithDefaults(), errors.Join(errs...)
}
