/* calendar.c: local time, working days and deadlines.
 *
 * The rule set carries one fixed UTC offset (China has one time zone without
 * daylight saving: Asia/Shanghai is UTC+08:00 all year), a table of holidays
 * and a table of make-up working days (调休: the weekend days worked to bridge
 * a holiday). Days are counted as local day numbers, days since 1970-01-01,
 * so every question here is integer arithmetic and a binary search. */
#include <string.h>

#include "core/err.h"
#include "rules/rules_int.h"

#define DAY_MS (24ll * 3600 * 1000)

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil). */
static int32_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int rules__day_of(const char *s, size_t len, int32_t *day)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (len != 10 || s[4] != '-' || s[7] != '-') return -1;
    for (size_t i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return -1;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0'), d = (s[8] - '0') * 10 + (s[9] - '0');
    if (y < 1970 || y > 2200 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m == 2 && d == 29 && !leap) return -1;
    *day = days_from_civil(y, m, d);
    return 0;
}

static int in_sorted(const int32_t *v, int n, int64_t x)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (v[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && v[lo] == x;
}

/* Monday 0 .. Sunday 6; day 0 (1970-01-01) was a Thursday. */
static int weekday_of(int64_t day)
{
    int64_t w = (day + 3) % 7;
    return (int)(w < 0 ? w + 7 : w);
}

int ld_rules_is_workday(const ld_rules *r, int64_t day)
{
    if (in_sorted(r->makeup, r->nmakeup, day)) return 1;
    if (in_sorted(r->holidays, r->nholidays, day)) return 0;
    return weekday_of(day) < 5;
}

static int64_t local_ms(const ld_rules *r, uint64_t now_ms)
{
    return (int64_t)now_ms + (int64_t)r->utc_offset_s * 1000;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

uint64_t ld_rules_deadline(const ld_rules *r, const ld_dispatch_def *d, int leg, int area,
                           uint64_t now_ms)
{
    if (area < 0 || area >= LD_AREA_COUNT) area = r->default_area;
    uint64_t ms = d->area_ms[area][leg];
    if (!(d->workdays & (1u << leg))) return now_ms + ms;
    /* N working days: the same time of day on the Nth working day after
     * today (the day of dispatch does not count). Bounded: N <= 3650, and
     * no calendar has more than a year of rest days in a row. */
    int64_t n = (int64_t)(ms / (uint64_t)DAY_MS), day = floor_div(local_ms(r, now_ms), DAY_MS);
    int64_t k = 0;
    for (int64_t guard = 0; n > 0 && guard < 4 * 3650 + 400; guard++) {
        k++;
        if (ld_rules_is_workday(r, day + k)) n--;
    }
    return now_ms + (uint64_t)k * (uint64_t)DAY_MS;
}

int ld_rules_parse_time(const ld_rules *r, const char *s, uint64_t *ms)
{
    int32_t day;
    size_t n = strlen(s);
    int h = 0, m = 0, sec = 0;
    if (n < 10 || rules__day_of(s, 10, &day) != 0) return LD_EINVAL;
    if (n > 10) {
        const char *t = s + 11;
        if ((s[10] != 'T' && s[10] != ' ') || (n != 16 && n != 19)) return LD_EINVAL;
        for (size_t i = 0; i < n - 11; i++)
            if ((i == 2 || i == 5) ? t[i] != ':' : (t[i] < '0' || t[i] > '9')) return LD_EINVAL;
        h = (t[0] - '0') * 10 + (t[1] - '0');
        m = (t[3] - '0') * 10 + (t[4] - '0');
        if (n == 19) sec = (t[6] - '0') * 10 + (t[7] - '0');
        if (h > 23 || m > 59 || sec > 59) return LD_EINVAL;
    }
    int64_t local = (int64_t)day * DAY_MS + ((int64_t)h * 3600 + m * 60 + sec) * 1000;
    int64_t utc = local - (int64_t)r->utc_offset_s * 1000;
    if (utc < 0) return LD_EINVAL;
    *ms = (uint64_t)utc;
    return 0;
}

int ld_rules_on_duty(const ld_rules *r, int dept, uint64_t now_ms)
{
    const ld_department *d = &r->departments[dept];
    if (d->roster < 0) return d->levels[0].terminal;
    const ld_roster *ro = &r->rosters[d->roster];
    for (int i = 0; i < ro->noverrides; i++)
        if (now_ms >= ro->overrides[i].from_ms && now_ms < ro->overrides[i].to_ms)
            return ro->overrides[i].terminal;
    int64_t local = local_ms(r, now_ms), day = floor_div(local, DAY_MS);
    int m = (int)((local - day * DAY_MS) / 60000), wd = weekday_of(day), prev = (wd + 6) % 7;
    for (int i = 0; i < ro->nshifts; i++) {
        const ld_shift *s = &ro->shifts[i];
        int on = s->from < s->to ? ((s->days >> wd & 1) && m >= s->from && m < s->to)
                                 : (((s->days >> wd & 1) && m >= s->from) ||
                                    ((s->days >> prev & 1) && m < s->to));
        if (on) return s->terminal;
    }
    return -1;
}

int ld_rules_intern(const ld_rules *r, const char *value)
{
    void *v = value && *value ? ld_map_get(&r->str_ids, value) : NULL;
    return v ? (int)(intptr_t)v : 0;
}

void ld_rules_input_init(const ld_rules *r, uint64_t now_ms, ld_match_input *in)
{
    memset(in, 0, sizeof *in);
    in->area = r->default_area;
    int64_t local = local_ms(r, now_ms), day = floor_div(local, DAY_MS);
    in->minute = (int)((local - day * DAY_MS) / 60000);
    in->weekday = weekday_of(day);
    in->workday = ld_rules_is_workday(r, day);
}
