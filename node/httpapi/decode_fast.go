package httpapi

import (
	"net/netip"

	"github.com/buytracker/buytracker/node/ledger"
)

// decodeBuyFast decodes the plain shape nearly every client sends: one
// object, each known field at most once, spelled exactly, integer ids,
// an amount as a number or a string, strings without escapes or non-ASCII
// bytes. It accepts only what decodeBuyStrict accepts, into the same
// purchase (FuzzDecodeBuyFastAgreesWithStrict checks both); anything else,
// valid or not, it leaves to decodeBuyStrict (ok false), so rejections are
// always the strict decoder's.
func decodeBuyFast(body []byte, remoteIP, key string) (p ledger.Purchase, ok bool) {
	const (
		haveUser = 1 << iota
		havePromotion
		haveProduct
		haveAmount
		haveIP
		haveTimestamp
		required = haveUser | havePromotion | haveProduct | haveAmount
	)
	var seen int
	var givenIP []byte
	var timestamp []byte
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return p, false
	}
	i = skipSpace(body, i+1)
	for {
		name, next, ok := plainString(body, i)
		if !ok {
			return p, false
		}
		i = skipSpace(body, next)
		if i >= len(body) || body[i] != ':' {
			return p, false
		}
		i = skipSpace(body, i+1)
		var field int
		switch string(name) {
		case "user_id":
			field = haveUser
			p.UserID, i, ok = plainID(body, i)
		case "promotion_id":
			field = havePromotion
			p.PromotionID, i, ok = plainID(body, i)
		case "product_id":
			field = haveProduct
			p.ProductID, i, ok = plainID(body, i)
		case "product_amount":
			field = haveAmount
			p.AmountCents, i, ok = plainAmount(body, i)
		case "ip_address":
			field = haveIP
			givenIP, i, ok = plainString(body, i)
		case "timestamp":
			field = haveTimestamp
			timestamp, i, ok = plainString(body, i)
		default:
			return p, false
		}
		if !ok || seen&field != 0 {
			return p, false
		}
		seen |= field
		i = skipSpace(body, i)
		if i >= len(body) {
			return p, false
		}
		if body[i] == '}' {
			break
		}
		if body[i] != ',' {
			return p, false
		}
		i = skipSpace(body, i+1)
	}
	if skipSpace(body, i+1) != len(body) || seen&required != required {
		return p, false
	}
	ip := ""
	if len(givenIP) > 0 {
		addr, err := netip.ParseAddr(string(givenIP))
		if err != nil || addr.Zone() != "" {
			return p, false
		}
		ip = addr.String()
		p.IP = ip
	} else {
		p.IP = remoteIP
	}
	if len(timestamp) > 0 {
		p.ClientTimestamp = string(timestamp)
	}
	p.IdempotencyKey = key
	if ledger.ValidatePurchase(&p) != nil {
		return ledger.Purchase{}, false
	}
	p.Fingerprint = fingerprint(&p, ip)
	return p, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string at b[i] made of printable ASCII without
// escapes and returns its content and the index after its closing quote.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, i, false
		}
	}
	return nil, i, false
}

// plainID reads a JSON integer in 1 .. 2^63-1 at b[i]: digits, no sign,
// no leading zero, no fraction or exponent.
func plainID(b []byte, i int) (int64, int, bool) {
	j := i
	var v int64
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		if j-i >= 18 { // 19 digits may overflow: leave it to the strict decoder
			return 0, i, false
		}
		v = v*10 + int64(b[j]-'0')
		j++
	}
	if j == i || b[i] == '0' || (j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '-' || b[j] == '+')) {
		return 0, i, false
	}
	return v, j, true
}

// plainAmount reads product_amount at b[i]: a JSON number or a plain
// string holding digits[.d[d]], within 0 .. maxAmountCents.
func plainAmount(b []byte, i int) (int64, int, bool) {
	if i < len(b) && b[i] == '"' {
		s, next, ok := plainString(b, i)
		if !ok {
			return 0, i, false
		}
		cents, ok := plainCents(s, false)
		return cents, next, ok
	}
	j := i
	for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.') {
		j++
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E' || b[j] == '-' || b[j] == '+') {
		return 0, i, false
	}
	cents, ok := plainCents(b[i:j], true)
	return cents, j, ok
}

// plainCents parses digits[.d[d]] into cents within 0 .. maxAmountCents.
// As a JSON number (number true) the whole part has no leading zero.
func plainCents(s []byte, number bool) (int64, bool) {
	var cents int64
	j := 0
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		if j >= 12 {
			return 0, false
		}
		cents = cents*10 + int64(s[j]-'0')
		j++
	}
	if j == 0 || (number && s[0] == '0' && j > 1) {
		return 0, false
	}
	cents *= 100
	if j < len(s) {
		frac := s[j+1:]
		if s[j] != '.' || len(frac) < 1 || len(frac) > 2 {
			return 0, false
		}
		for _, c := range frac {
			if c < '0' || c > '9' {
				return 0, false
			}
		}
		f := int64(frac[0]-'0') * 10
		if len(frac) == 2 {
			f += int64(frac[1] - '0')
		}
		cents += f
	}
	if cents > maxAmountCents {
		return 0, false
	}
	return cents, true
}
