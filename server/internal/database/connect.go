package database

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// connect waits until PostgreSQL answers: it retries with backoff, for up
// to o.ConnectTimeout, the errors of a server that is not up yet
// (connection refused, starting up), and fails at once on the others.
func connect(ctx context.Context, pool *pgxpool.Pool, cfg *pgxpool.Config, o Options) error {
	where := net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port)))
	attempts := 0
	ping := func() (struct{}, error) {
		attempts++
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := pool.Ping(pctx)
		if err != nil && (o.ConnectTimeout <= 0 || !retryable(err)) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}
	b := &backoff.ExponentialBackOff{InitialInterval: 250 * time.Millisecond, RandomizationFactor: 0.2,
		Multiplier: 1.6, MaxInterval: 5 * time.Second}
	_, err := backoff.Retry(ctx, ping, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(o.ConnectTimeout),
		backoff.WithNotify(func(err error, next time.Duration) {
			if o.Logger != nil {
				o.Logger.Warn("PostgreSQL is not ready; retrying", "at", where, "attempt", attempts,
					"retry_in", next.Round(time.Millisecond), "err", err)
			}
		}))
	switch {
	case err == nil:
		if attempts > 1 && o.Logger != nil {
			o.Logger.Info("connected to PostgreSQL", "at", where, "attempts", attempts)
		}
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("connect to PostgreSQL at %s: %w", where, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01": // invalid_password
			return fmt.Errorf("connect to PostgreSQL at %s: %w: check the user and password in DATABASE_URL", where, err)
		case "28000": // invalid_authorization_specification
			return fmt.Errorf("connect to PostgreSQL at %s: %w: the server does not accept this user from here (pg_hba.conf); check DATABASE_URL", where, err)
		case "3D000": // invalid_catalog_name
			return fmt.Errorf("connect to PostgreSQL at %s: %w: create the database, or fix its name in DATABASE_URL", where, err)
		}
	}
	if retryable(err) && o.ConnectTimeout > 0 {
		return fmt.Errorf("PostgreSQL at %s did not answer within %s (%d attempts; KILN_DB_CONNECT_TIMEOUT sets how long to wait): %w",
			where, o.ConnectTimeout, attempts, err)
	}
	return fmt.Errorf("connect to PostgreSQL at %s: %w", where, err)
}

// retryable reports whether a connection error may go away by waiting: the
// server is not listening yet, is starting up or has no free connection
// slot, or the network did not get through. Errors the server answers
// otherwise (authentication, unknown database) are final.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// cannot_connect_now: starting up, shutting down, in recovery;
		// too_many_connections.
		return pgErr.Code == "57P03" || pgErr.Code == "53300"
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded)
}
