//! The operations dashboard over real HTTP and WebSockets: a session for the API key only, in
//! an HttpOnly SameSite=Strict cookie; the feed once a second with the numbers of
//! `/api/stats`; look-up and disconnect, the latter only with the session's CSRF token from
//! the server's own origin; one row per node of a cluster.

mod support;

use serde_json::Value;
use support::{TestServer, WsClient, API_KEY, PATIENCE};
use switchboard_testing::Redis;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

/// A signed-in dashboard: its cookie and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn sign_in_with(server: &TestServer, key: Option<&str>) -> (u16, Value, Option<String>) {
    let mut request = server
        .http
        .post(format!("{}/dashboard/session", server.base));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let cookie = response
        .headers()
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().to_owned());
    (status, response.json().await.unwrap(), cookie)
}

async fn sign_in(server: &TestServer) -> Session {
    let (status, body, cookie) = sign_in_with(server, Some(API_KEY)).await;
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.expect("a session cookie");
    Session {
        cookie: cookie.split(';').next().unwrap().to_owned(),
        csrf: body["csrf"].as_str().unwrap().to_owned(),
    }
}

/// A dashboard request with the session's cookie and, if given, a CSRF token and an origin.
async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    csrf: Option<&str>,
    origin: Option<&str>,
) -> (u16, Value) {
    let mut request = server
        .http
        .request(method.parse().unwrap(), format!("{}{path}", server.base));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Open the feed's WebSocket with `cookie` and `origin`.
async fn feed(
    server: &TestServer,
    cookie: &str,
    origin: Option<&str>,
) -> Result<WsClient, WsError> {
    let mut request = format!("ws://{}/dashboard/feed", server.addr())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    WsClient::request(server.addr(), request).await
}

fn refused_status(result: Result<WsClient, WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("unexpected handshake error: {e}"),
        Ok(_) => panic!("the feed was opened"),
    }
}

#[tokio::test]
async fn a_wrong_or_missing_key_opens_no_session() {
    let server = TestServer::start().await;
    let (status, body, cookie) = sign_in_with(&server, Some("not-the-key")).await;
    assert_eq!((status, body["reason"].as_str()), (401, Some("wrong_key")));
    assert_eq!(cookie, None);
    let (status, body, cookie) = sign_in_with(&server, None).await;
    assert_eq!((status, body["reason"].as_str()), (401, Some("missing")));
    assert_eq!(cookie, None);
    // A made-up cookie is no session.
    let forged =
        "switchboard_dashboard=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let (status, body) = call(
        &server,
        "GET",
        "/dashboard/users/alice",
        Some(forged),
        None,
        None,
    )
    .await;
    assert_eq!((status, body["reason"].as_str()), (401, Some("no_session")));
    assert_eq!(refused_status(feed(&server, forged, None).await), 401);
}

#[tokio::test]
async fn the_key_buys_an_httponly_strict_cookie_scoped_to_the_dashboard() {
    let server = TestServer::start().await;
    let (status, body, cookie) = sign_in_with(&server, Some(API_KEY)).await;
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=3600",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "development cookies work over plain HTTP"
    );
    assert!(!cookie.contains(API_KEY) && !body.to_string().contains(API_KEY));
    assert_eq!(body["expires_in_secs"], 3600);
    // A reloaded page gets its CSRF token back with the cookie.
    let cookie = cookie.split(';').next().unwrap();
    let (status, again) = call(
        &server,
        "GET",
        "/dashboard/session",
        Some(cookie),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(again["csrf"], body["csrf"]);
    // Signing out ends it, with the CSRF token only.
    let csrf = body["csrf"].as_str().unwrap();
    let (status, _) = call(
        &server,
        "DELETE",
        "/dashboard/session",
        Some(cookie),
        None,
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &server,
        "DELETE",
        "/dashboard/session",
        Some(cookie),
        Some(csrf),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &server,
        "GET",
        "/dashboard/session",
        Some(cookie),
        None,
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_feed_sends_a_single_nodes_figures_once_a_second_as_the_api_reports_them() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for user in ["alice", "bob", "carol"] {
        let mut client = server.connect(user).await;
        client.join("lobby").await;
        clients.push(client);
    }
    server
        .publish(serde_json::json!({"room": "lobby"}), "chat", Value::Null)
        .await;
    let session = sign_in(&server).await;
    let origin = format!("http://{}", server.addr());
    let mut feed = feed(&server, &session.cookie, Some(&origin)).await.unwrap();
    let first = feed.json().await;
    let second = feed.json().await;
    assert_eq!(second["seq"].as_u64(), first["seq"].as_u64().map(|s| s + 1));
    assert_eq!(second["interval_ms"], 1000);
    let nodes = second["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{second}");
    assert_eq!(nodes[0]["node"], "local");
    assert_eq!(second["this_node"], "local");
    let (_, api) = server.api("GET", "/api/stats", None).await;
    let shown = &nodes[0]["stats"];
    for gauge in ["connections", "users", "rooms", "threads", "runs_active"] {
        assert_eq!(shown[gauge], api[gauge], "{gauge}: {shown} against {api}");
    }
    assert_eq!(shown["connections"], 3);
    assert_eq!(second["totals"]["connections"], 3);
    assert!(shown["counters"]["messages_out"].as_u64() <= api["counters"]["messages_out"].as_u64());
    assert!(nodes[0]["budgets"]["max_connections"].as_u64().unwrap() > 0);
    assert!(second.get("cluster_error").is_none());
    drop(clients);
}

/// The paths of every key in `value` (`.nodes.0.stats.counters` ...); the keys of maps whose
/// keys are data (reasons) and array elements past the first are left out.
fn shape(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map)
            if !["closes", "drops", "refused"]
                .iter()
                .any(|m| path.ends_with(m)) =>
        {
            for (key, value) in map {
                let path = format!("{path}.{key}");
                out.push(path.clone());
                shape(value, &path, out);
            }
        }
        Value::Array(items) => {
            if let Some(first) = items.first() {
                shape(first, &format!("{path}.0"), out);
            }
        }
        _ => {}
    }
}

/// The feed's example in docs/API.md has exactly the fields a real feed message has.
#[tokio::test]
async fn the_documented_feed_example_has_the_fields_of_a_real_feed() {
    let api = include_str!("../../docs/API.md");
    let fence = "```json dashboard feed\n";
    let start = api.find(fence).expect("the feed's example") + fence.len();
    let end = start + api[start..].find("\n```").unwrap();
    let example: Value = serde_json::from_str(&api[start..end]).expect("JSON");
    let server = TestServer::start().await;
    let _alice = server.connect("alice").await;
    let session = sign_in(&server).await;
    let mut feed = feed(&server, &session.cookie, None).await.unwrap();
    let real = feed.json().await;
    let (mut documented, mut sent) = (Vec::new(), Vec::new());
    shape(&example, "", &mut documented);
    shape(&real, "", &mut sent);
    documented.sort();
    sent.sort();
    assert_eq!(documented, sent);
}

#[tokio::test]
async fn the_feed_refuses_a_page_of_another_origin_and_past_its_limit() {
    let server = TestServer::start().await;
    let session = sign_in(&server).await;
    let status = refused_status(feed(&server, &session.cookie, Some("http://evil.example")).await);
    assert_eq!(status, 403);
    let mut open = Vec::new();
    for _ in 0..switchboard_server::dashboard::MAX_FEEDS {
        open.push(feed(&server, &session.cookie, None).await.unwrap());
    }
    assert_eq!(
        refused_status(feed(&server, &session.cookie, None).await),
        503
    );
    open.pop().unwrap().close().await;
    // The slot comes back once the server sees the close.
    switchboard_testing::eventually("a feed slot is free again", || async {
        feed(&server, &session.cookie, None).await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn looking_up_and_disconnecting_a_user_needs_the_session_and_its_csrf_token() {
    let server = TestServer::start().await;
    let mut alice = server.connect_with("alice", "&thread=t1").await;
    let session = sign_in(&server).await;
    let cookie = Some(session.cookie.as_str());
    let (status, presence) =
        call(&server, "GET", "/dashboard/users/alice", cookie, None, None).await;
    assert_eq!(status, 200, "{presence}");
    assert_eq!(presence["connected"], true);
    assert_eq!(presence["connections"][0]["id"], alice.id().as_str());
    assert_eq!(presence["connections"][0]["thread"], "t1");
    assert_eq!(
        presence["cluster_connections"],
        Value::Null,
        "a single node"
    );

    let path = "/dashboard/users/alice/disconnect";
    let own = format!("http://{}", server.addr());
    let refused = [
        (None, Some(session.csrf.as_str()), None, 401),
        (cookie, None, None, 403),
        (cookie, Some("forged-token"), None, 403),
        (
            cookie,
            Some(session.csrf.as_str()),
            Some("http://evil.example"),
            403,
        ),
    ];
    for (cookie, csrf, origin, expected) in refused {
        let (status, body) = call(&server, "POST", path, cookie, csrf, origin).await;
        assert_eq!(status, expected, "{body}");
    }
    assert_eq!(
        alice.fence().await,
        Vec::<Value>::new(),
        "alice is still connected and was sent nothing"
    );
    let (status, body) = call(
        &server,
        "POST",
        path,
        cookie,
        Some(&session.csrf),
        Some(&own),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["closed"], 1);
    assert_eq!(alice.closed().await, 4002);
}

#[tokio::test]
async fn a_session_ends_after_its_lifetime_and_closes_its_feed() {
    let server = TestServer::with("[dashboard]\nsession_ttl_secs = 1\nmax_sessions = 1").await;
    let first = sign_in(&server).await;
    let second = sign_in(&server).await;
    let (status, _) = call(
        &server,
        "GET",
        "/dashboard/session",
        Some(&first.cookie),
        None,
        None,
    )
    .await;
    assert_eq!(status, 401, "the oldest session made room for the new one");
    let mut feed = feed(&server, &second.cookie, None).await.unwrap();
    assert_eq!(feed.close_code().await, Some(1008));
    let (status, _) = call(
        &server,
        "GET",
        "/dashboard/session",
        Some(&second.cookie),
        None,
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_dashboard_is_not_served_when_disabled() {
    let server = TestServer::with("[dashboard]\nenabled = false").await;
    for path in ["/dashboard", "/dashboard/session", "/dashboard/feed"] {
        let (status, _) = server.get_text(path).await;
        assert_eq!(status, 404, "{path}");
    }
}

#[tokio::test]
async fn the_page_forbids_framing_and_foreign_scripts() {
    let server = TestServer::start().await;
    let response = server
        .http
        .get(format!("{}/dashboard", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
    assert_eq!(headers["x-frame-options"], "DENY");
    let page = response.text().await.unwrap();
    assert!(page.contains("/dashboard/dashboard.js") && !page.contains("<script>"));
}

/// Each node of a cluster publishes its sample to Redis; a dashboard on either shows both.
#[tokio::test]
async fn a_cluster_dashboard_has_one_row_per_node_and_their_totals() {
    let redis = Redis::start().await;
    let file = format!("[redis]\nurl = \"{}\"", redis.url());
    let a = TestServer::with(&file).await;
    let b = TestServer::with(&file).await;
    let _on_b = [b.connect("bob").await, b.connect("bea").await];
    let _on_a = a.connect("alice").await;
    let session = sign_in(&a).await;
    let mut feed = feed(&a, &session.cookie, None).await.unwrap();
    let seen = tokio::time::timeout(PATIENCE, async {
        loop {
            let message = feed.json().await;
            if message["nodes"].as_array().is_some_and(|n| n.len() == 2)
                && message["totals"]["connections"] == 3
            {
                return message;
            }
        }
    })
    .await
    .expect("both nodes appear in the feed");
    let nodes = seen["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["node"], seen["this_node"], "this node first");
    assert_eq!(nodes[0]["stats"]["connections"], 1);
    assert_eq!(nodes[1]["stats"]["connections"], 2);
    assert_ne!(nodes[0]["node"], nodes[1]["node"]);
    let (status, presence) = call(
        &a,
        "GET",
        "/dashboard/users/bob",
        Some(&session.cookie),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(presence["connected"], false, "not on this node");
    assert_eq!(presence["cluster_connections"], 1);
}
