package main

import (
	"context"
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The prototype report's proposal: one row per purchase, a counter row
// updated in the same transaction, windows counted with COUNT(*) over the
// timestamp (its DDL is not in this repository; this is what it described).
const (
	pgSchema = `
CREATE TABLE IF NOT EXISTS purchases (
	id               bigserial PRIMARY KEY,
	user_id          bigint NOT NULL,
	promotion_id     bigint NOT NULL,
	product_id       bigint NOT NULL,
	product_amount   numeric(10, 2) NOT NULL,
	ip_address       text NOT NULL,
	client_timestamp timestamptz,
	timestamp        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS purchases_timestamp ON purchases (timestamp);
CREATE TABLE IF NOT EXISTS purchase_stats (
	id          integer PRIMARY KEY,
	total_count bigint NOT NULL
);
INSERT INTO purchase_stats (id, total_count) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;`

	pgInsertPurchase = `INSERT INTO purchases (user_id, promotion_id, product_id, product_amount, ip_address, client_timestamp)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`
	pgCountPurchases = `UPDATE purchase_stats SET total_count = total_count + $1 WHERE id = 1 RETURNING total_count`
	// One statement, one snapshot: the counter and the window count agree.
	pgStats = `SELECT (SELECT total_count FROM purchase_stats WHERE id = 1),
	(SELECT COUNT(*) FROM purchases WHERE timestamp >= NOW() - make_interval(secs => $1))`
	// The bulk path: rows made by the server itself, like syntheticPurchase.
	pgPreloadPurchases = `INSERT INTO purchases (user_id, promotion_id, product_id, product_amount, ip_address)
SELECT 1 + i % 10000, 1 + i % 50, 1 + i % 500, (100 + i % 99900) / 100.0, '127.0.0.1'
FROM generate_series($1::bigint, $2::bigint) AS i`
)

// pgChunk is the rows a bulk preload writes per transaction.
const pgChunk = 50_000

// postgresBackend stores purchases as the prototype's report proposed. Time
// comes from the server's NOW() (the column default), as in the proposal.
type postgresBackend struct {
	pool *pgxpool.Pool
}

func newPostgresBackend(ctx context.Context, dsn string, conns int32) (*postgresBackend, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres DSN: %w", err)
	}
	cfg.MaxConns = conns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	if _, err := pool.Exec(ctx, pgSchema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("creating the schema: %w", err)
	}
	return &postgresBackend{pool: pool}, nil
}

// pgInsertArgs are pgInsertPurchase's parameters for p: the amount as an
// exact numeric, the client's timestamp NULL when it gave none.
func pgInsertArgs(p purchase) []any {
	var clientTime pgtype.Timestamptz
	if p.ClientTimestamp != "" {
		clientTime = pgtype.Timestamptz{Time: p.ClientTime, Valid: true}
	}
	amount := pgtype.Numeric{Int: big.NewInt(p.AmountCents), Exp: -2, Valid: true}
	return []any{p.UserID, p.PromotionID, p.ProductID, amount, p.IP, clientTime}
}

// pgWindowSeconds is pgStats's parameter: the window in seconds.
func pgWindowSeconds(window time.Duration) float64 { return window.Seconds() }

func (b *postgresBackend) buy(ctx context.Context, p purchase, _ time.Time) (receipt, error) {
	var rec receipt
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, pgInsertPurchase, pgInsertArgs(p)...).Scan(&rec.PurchaseID); err != nil {
			return fmt.Errorf("inserting the purchase: %w", err)
		}
		if err := tx.QueryRow(ctx, pgCountPurchases, 1).Scan(&rec.TotalBuys); err != nil {
			return fmt.Errorf("counting the purchase: %w", err)
		}
		return nil
	})
	return rec, err
}

func (b *postgresBackend) stats(ctx context.Context, window time.Duration, _ time.Time) (counts, error) {
	var c counts
	if err := b.pool.QueryRow(ctx, pgStats, pgWindowSeconds(window)).Scan(&c.TotalBuys, &c.RecentBuys); err != nil {
		return counts{}, fmt.Errorf("counting: %w", err)
	}
	return c, nil
}

// preload inserts n rows made by the server (INSERT ... SELECT over
// generate_series), a chunk per transaction with its counter update, then
// vacuums so that window counts can use an index-only scan.
func (b *postgresBackend) preload(ctx context.Context, n int64, _ time.Time) (int64, error) {
	var done int64
	for _, size := range chunkSizes(n, pgChunk) {
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, pgPreloadPurchases, done+1, done+size); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, pgCountPurchases, size)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("preloading rows %d..%d: %w", done+1, done+size, err)
		}
		done += size
	}
	if _, err := b.pool.Exec(ctx, "VACUUM (ANALYZE) purchases"); err != nil {
		return done, fmt.Errorf("vacuuming: %w", err)
	}
	return done, nil
}

func (b *postgresBackend) close() { b.pool.Close() }
