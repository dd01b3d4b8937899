package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Keys of the Redis layout: INCR on a counter for the total, a sorted set
// scored by time (milliseconds) for the window.
const (
	redisTotalKey  = "buytracker:total_buys"
	redisWindowKey = "buytracker:purchases_by_time"
)

// redisBuyScript counts the purchase and files its record under its time,
// atomically; the member starts with the purchase id, so it is unique.
var redisBuyScript = redis.NewScript(`
local id = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], ARGV[1], id .. '|' .. ARGV[2])
return id`)

// redisChunk is the members a bulk preload adds per command.
const redisChunk = 10_000

// redisBackend keeps the count and the window in Redis, which acknowledges
// a write only after its append-only file is fsynced (appendfsync always).
type redisBackend struct {
	client *redis.Client
}

func newRedisBackend(ctx context.Context, addr string, conns int) (*redisBackend, error) {
	client := redis.NewClient(&redis.Options{Addr: addr, PoolSize: conns, MinIdleConns: conns / 4})
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("connecting to redis at %s: %w", addr, err)
	}
	return &redisBackend{client: client}, nil
}

// redisBuyArgs are redisBuyScript's keys and arguments for p arriving at now.
func redisBuyArgs(p purchase, now time.Time) (keys []string, args []any) {
	return []string{redisTotalKey, redisWindowKey}, []any{now.UnixMilli(), p.record()}
}

// redisWindowMin is ZCOUNT's lower bound for the window ending at now
// (inclusive, as the other backends count).
func redisWindowMin(window time.Duration, now time.Time) string {
	return strconv.FormatInt(now.Add(-window).UnixMilli(), 10)
}

// redisPreloadMembers are ZADD's members for purchases first..first+n-1.
func redisPreloadMembers(first, n int64, now time.Time) []redis.Z {
	score := float64(now.UnixMilli())
	members := make([]redis.Z, n)
	for i := range n {
		id := first + i
		members[i] = redis.Z{Score: score, Member: strconv.FormatInt(id, 10) + "|" + syntheticPurchase(id).record()}
	}
	return members
}

func (b *redisBackend) buy(ctx context.Context, p purchase, now time.Time) (receipt, error) {
	keys, args := redisBuyArgs(p, now)
	id, err := redisBuyScript.Run(ctx, b.client, keys, args...).Int64()
	if err != nil {
		return receipt{}, fmt.Errorf("recording: %w", err)
	}
	return receipt{PurchaseID: id, TotalBuys: id}, nil
}

func (b *redisBackend) stats(ctx context.Context, window time.Duration, now time.Time) (counts, error) {
	var total *redis.StringCmd
	var recent *redis.IntCmd
	// MULTI/EXEC: both figures from the same moment.
	_, err := b.client.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		total = pipe.Get(ctx, redisTotalKey)
		recent = pipe.ZCount(ctx, redisWindowKey, redisWindowMin(window, now), "+inf")
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return counts{}, fmt.Errorf("counting: %w", err)
	}
	c := counts{RecentBuys: recent.Val()}
	if c.TotalBuys, err = total.Int64(); err != nil && !errors.Is(err, redis.Nil) {
		return counts{}, fmt.Errorf("reading the total: %w", err)
	}
	return c, nil
}

// preload adds n purchases, a chunk per MULTI/EXEC (ZADD of the chunk's
// members, INCRBY of the counter), each fsynced before the next.
func (b *redisBackend) preload(ctx context.Context, n int64, now time.Time) (int64, error) {
	first, err := b.client.Get(ctx, redisTotalKey).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("reading the total: %w", err)
	}
	first++
	var done int64
	for _, size := range chunkSizes(n, redisChunk) {
		members := redisPreloadMembers(first+done, size, now)
		_, err := b.client.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.ZAdd(ctx, redisWindowKey, members...)
			pipe.IncrBy(ctx, redisTotalKey, size)
			return nil
		})
		if err != nil {
			return done, fmt.Errorf("preloading purchases %d..%d: %w", first+done, first+done+size-1, err)
		}
		done += size
	}
	return done, nil
}

func (b *redisBackend) close() { _ = b.client.Close() }
