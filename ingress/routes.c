/* routes.c - the route table: every endpoint of ingress in one place. */
#include "ingress/routes.h"
#include "ingress/assets.h"
#include "common/auth.h"

#define FAN     ONS_ROLE_FAN
#define SELLER  ONS_ROLE_SELLER
#define ADMIN   ONS_ROLE_ADMIN
#define SCANNER ONS_ROLE_SCANNER
#define ANYONE  (FAN | SELLER | SCANNER | ADMIN)

/* A row without the last fields (the now hook, ing_route.now) leaves
 * them NULL: most routes are never answered at the accept gate. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* Matched in order; the first route whose pattern and method match wins. */
const ing_route ing_routes[] = {
    /* name             method    pattern                        handler                  roles body
     */
    {"join", "POST", "/v1/events/{}/intents", ing_route_join, FAN, ING_BODY_OWN, NULL, NULL, 1},
    {"intent_get", "GET", "/v1/intents/{}", ing_route_intent_get, ANYONE, 0,
     ing_route_intent_get_now},
    {"intent_delete", "DELETE", "/v1/intents/{}", ing_route_intent_delete, ANYONE, 0},
    {"reservation_delete", "DELETE", "/v1/reservations/{}", ing_route_reservation_delete, ANYONE,
     0},
    {"checkout", "POST", "/v1/reservations/{}/checkout", ing_route_checkout, ANYONE, 1},
    {"order_get", "GET", "/v1/orders/{}", ing_route_order_get, ANYONE, 0},
    {"my_tickets", "GET", "/v1/me/tickets", ing_route_my_tickets, ANYONE, 0},
    {"ticket_transfer", "POST", "/v1/tickets/{}/transfer", ing_route_ticket_transfer, ANYONE, 1},
    {"ticket_cancel", "POST", "/v1/tickets/{}/cancel", ing_route_ticket_cancel, ANYONE, 0},
    {"ticket_code", "GET", "/v1/tickets/{}/code", ing_route_ticket_code, ANYONE, 0},
    {"scan", "POST", "/v1/scans", ing_route_scan, SCANNER, 1},
    {"venue_create", "POST", "/v1/venues", ing_route_venue_create, SELLER | ADMIN, 1},
    {"venue_scanners_list", "GET", "/v1/venues/{}/scanners", ing_route_scanners_list,
     SELLER | ADMIN, 0},
    {"venue_scanner_put", "PUT", "/v1/venues/{}/scanners/{}", ing_route_scanner_put, SELLER | ADMIN,
     0},
    {"venue_scanner_delete", "DELETE", "/v1/venues/{}/scanners/{}", ing_route_scanner_delete,
     SELLER | ADMIN, 0},
    {"event_create", "POST", "/v1/events", ing_route_event_create, SELLER | ADMIN, 1},
    {"event_scanners_list", "GET", "/v1/events/{}/scanners", ing_route_scanners_list,
     SELLER | ADMIN, 0},
    {"event_scanner_put", "PUT", "/v1/events/{}/scanners/{}", ing_route_scanner_put, SELLER | ADMIN,
     0},
    {"event_scanner_delete", "DELETE", "/v1/events/{}/scanners/{}", ing_route_scanner_delete,
     SELLER | ADMIN, 0},
    {"events_list", "GET", "/v1/events", ing_route_events_list, 0, 0},
    {"event_get", "GET", "/v1/events/{}", ing_route_event_get, 0, 0, ing_route_event_get_now,
     ing_route_event_get_now_end},
    {"event_update", "PATCH", "/v1/events/{}", ing_route_event_update, SELLER | ADMIN, 1},
    {"event_draw", "GET", "/v1/events/{}/draw", ing_route_event_draw, 0, 0},
    {"event_pause", "POST", "/v1/events/{}/pause", ing_route_event_pause, SELLER | ADMIN, 0},
    {"event_resume", "POST", "/v1/events/{}/resume", ing_route_event_resume, SELLER | ADMIN, 0},
    {"event_cancel", "POST", "/v1/events/{}/cancel", ing_route_event_cancel, SELLER | ADMIN, 0},
    {"event_admission", "POST", "/v1/events/{}/admission", ing_route_event_admission,
     SELLER | ADMIN, 1},
    {"event_challenge", "GET", "/v1/events/{}/challenge", ing_route_event_challenge, FAN, 0},
    {"event_pow", "POST", "/v1/events/{}/pow", ing_route_event_pow, SELLER | ADMIN, 1},
    {"user_create", "POST", "/v1/users", ing_route_user_create, 0, 1},
    {"session_create", "POST", "/v1/sessions", ing_route_session_create, 0, 1},
    {"session_refresh", "POST", "/v1/sessions/refresh", ing_route_session_refresh, 0, 1},
    {"session_delete", "DELETE", "/v1/sessions", ing_route_session_delete, 0, 1},
    {"me", "GET", "/v1/me", ing_route_me, ANYONE, 0},
    {"user_roles_grant", "POST", "/v1/admin/users/{}/roles", ing_route_user_roles_grant, ADMIN, 1},
    {"admin_queues", "GET", "/v1/admin/queues", ing_route_admin_queues, ADMIN, 0},
    {"admin_history", "GET", "/v1/admin/history", ing_route_admin_history, ADMIN, 0},
    {"healthz", "GET", "/healthz", ing_route_healthz, 0, 0},
    {"readyz", "GET", "/readyz", ing_route_readyz, 0, 0},
    {"metrics", "GET", "/metrics", ing_route_metrics, 0, 0},
    /* The web pages (ingress/assets.h): public shells; the token stays in the
     * browser and goes to the API above. */
    {"web_home", "GET", "/", ing_route_web_fan, 0, 0},
    {"web_fan", "GET", "/q/{}", ing_route_web_fan, 0, 0},
    {"web_ops", "GET", "/ops/", ing_route_web_ops, 0, 0},
    {"web_ops_bare", "GET", "/ops", ing_route_web_ops, 0, 0},
    {"web_asset", "GET", "/web/{}", ing_route_web_asset, 0, 0},
};

const size_t ing_route_count = sizeof ing_routes / sizeof *ing_routes;
