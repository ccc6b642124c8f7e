/* input.c: what matching reads from an event, taken once per event.
 *
 * Enum fields are copied; names (district, grid, target office) become the
 * ids the rule set interned at load, one hash look-up each and only for the
 * fields some rule tests; numbers become doubles. Routes then compare ints
 * and doubles only. */
#include "rules/rules_int.h"
#include "wire/wire.h"

void ld_rules_input(const ld_rules *r, const Linkd__V1__Envelope *ev, uint64_t now_ms,
                    ld_match_input *in)
{
    ld_rules_input_init(r, now_ms, in);
    in->kind = ld_envelope_kind(ev);
    in->category = ld_envelope_category(ev);
    in->status = ev->has_status ? (int)ev->status : 0;
    switch (ev->body_case) {
    case LINKD__V1__ENVELOPE__BODY_CALL:
        if (ev->call->has_priority) in->priority = (int)ev->call->priority;
        if (ev->call->has_people) in->people = ev->call->people;
        break;
    case LINKD__V1__ENVELOPE__BODY_SENSOR: {
        const Linkd__V1__SensorAlarm *s = ev->sensor;
        in->has_value = s->has_value;
        in->num[LD_NUM_VALUE] = s->value;
        in->num[LD_NUM_THRESHOLD] = s->threshold;
        in->num[LD_NUM_RATIO] = s->threshold != 0 ? s->value / s->threshold : 0;
        in->num[LD_NUM_OVER] = s->value - s->threshold;
        break;
    }
    case LINKD__V1__ENVELOPE__BODY_PETITION:
        in->people = ev->petition->petitioners;
        in->num[LD_NUM_REPEAT] = ev->petition->repeat_count;
        in->bypass = ev->petition->bypass_level;
        if (r->str_used & (1u << LD_STR_OFFICE))
            in->str[LD_STR_OFFICE] = ld_rules_intern(r, ev->petition->target_office);
        break;
    default: break;
    }
    in->num[LD_NUM_PEOPLE] = in->people;
    const Linkd__V1__Location *loc = ld_envelope_location(ev);
    if (loc && (r->str_used & (1u << LD_STR_DISTRICT))) {
        in->str[LD_STR_DISTRICT] = ld_rules_intern(r, loc->district);
        if (in->str[LD_STR_DISTRICT] > 0) in->area = r->area_of[in->str[LD_STR_DISTRICT]];
    }
    if (loc && (r->str_used & (1u << LD_STR_GRID)))
        in->str[LD_STR_GRID] = ld_rules_intern(r, loc->grid);
}
