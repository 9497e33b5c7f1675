//! The Kubernetes manifests under `deploy/k8s/`, rendered in memory through the library
//! and read back as YAML: every binary gets each kind, ports and probes match the ports
//! the binaries listen on, pods are hardened, network policies allow only the
//! architecture's paths, routes reach the right backends, overlays name every image and
//! free text is escaped. (Schema validation, kustomize, checkov and yamllint run over
//! the generated matrix in `.ci/validators/k8s.sh`.)

mod common;

use common::{answers, text};
use new_service::answers::{PartialAnswers, PartialMessaging};
use new_service::tree::FileTree;
use serde::Deserialize;
use serde_yaml::Value;

const DESCRIPTION: &str = "a \"quoted\" #not-comment: {{x}} \\ back\tslash";
const OWNER: &str = "O'Brien: #1 {% raw %} - [team]";

/// The services of every test system: all five protocols, with a two-word name.
const SERVICES: &[(&str, &str)] = &[
    ("catalog", "rest"),
    ("order-items", "grpc"),
    ("feed", "sse"),
    ("chat", "websocket"),
    ("graph", "graphql"),
];

fn render(gateway: bool, services: &[(&str, &str)]) -> FileTree {
    common::render(PartialAnswers {
        description: Some(DESCRIPTION.into()),
        owner: Some(OWNER.into()),
        ..answers(services, gateway)
    })
}

/// Every YAML document of a file, empty ones (comments only) left out.
fn documents(tree: &FileTree, path: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&text(tree, path))
        .map(|document| Value::deserialize(document).unwrap_or_else(|e| panic!("{path}: {e}")))
        .filter(|value| !value.is_null())
        .collect()
}

/// Every resource of the base, from the files its kustomization lists.
fn base(tree: &FileTree) -> Vec<Value> {
    let kustomization = &documents(tree, "deploy/k8s/base/kustomization.yaml")[0];
    kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|file| documents(tree, &format!("deploy/k8s/base/{}", file.as_str().unwrap())))
        .collect()
}

fn find<'a>(resources: &'a [Value], kind: &str, name: &str) -> &'a Value {
    resources
        .iter()
        .find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn all<'a>(resources: &'a [Value], kind: &str) -> Vec<&'a Value> {
    resources.iter().filter(|r| r["kind"] == kind).collect()
}

fn str_of(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

/// (binary, port) of every binary: the gateway on 8080, service i on 8081 + i.
fn binaries(gateway: bool, services: &[(&str, &str)]) -> Vec<(String, u64)> {
    let mut binaries = Vec::new();
    if gateway {
        binaries.push(("gateway".to_owned(), 8080));
    }
    for (index, (name, _)) in services.iter().enumerate() {
        binaries.push(((*name).to_owned(), 8081 + index as u64));
    }
    binaries
}

#[test]
fn the_kustomization_lists_every_base_file() {
    for gateway in [true, false] {
        let tree = render(gateway, SERVICES);
        let kustomization = &documents(&tree, "deploy/k8s/base/kustomization.yaml")[0];
        let mut listed: Vec<String> = kustomization["resources"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|file| format!("deploy/k8s/base/{}", str_of(file)))
            .collect();
        listed.sort();
        let mut present: Vec<String> = tree
            .paths()
            .filter(|p| p.starts_with("deploy/k8s/base/") && !p.ends_with("kustomization.yaml"))
            .map(str::to_owned)
            .collect();
        present.sort();
        assert_eq!(listed, present);
    }
}

#[test]
fn every_binary_gets_each_kind_with_its_labels() {
    for gateway in [true, false] {
        let tree = render(gateway, SERVICES);
        let resources = base(&tree);
        for (binary, _) in binaries(gateway, SERVICES) {
            for (kind, name) in [
                ("Deployment", binary.clone()),
                ("Service", binary.clone()),
                ("ServiceAccount", binary.clone()),
                ("ConfigMap", format!("{binary}-config")),
                ("HorizontalPodAutoscaler", binary.clone()),
                ("PodDisruptionBudget", binary.clone()),
                ("NetworkPolicy", format!("{binary}-ingress")),
            ] {
                let resource = find(&resources, kind, &name);
                let labels = &resource["metadata"]["labels"];
                assert_eq!(
                    labels["app.kubernetes.io/name"],
                    binary.as_str(),
                    "{kind} {name}"
                );
                assert_eq!(labels["app.kubernetes.io/instance"], binary.as_str());
                assert_eq!(labels["app.kubernetes.io/part-of"], "shop");
                assert_eq!(labels["app.kubernetes.io/version"], "0.1.0");
                let component = if binary == "gateway" {
                    "gateway"
                } else {
                    "service"
                };
                assert_eq!(labels["app.kubernetes.io/component"], component);
            }
        }
        let expected = binaries(gateway, SERVICES).len();
        assert_eq!(all(&resources, "Deployment").len(), expected);
        assert!(
            all(&resources, "Deployment")
                .iter()
                .all(|d| d["metadata"]["name"] != "gateway" || gateway),
            "a gateway Deployment without the gateway"
        );
        // Every resource belongs to the system and to its namespace.
        for resource in &resources {
            assert_eq!(
                resource["metadata"]["labels"]["app.kubernetes.io/part-of"],
                "shop"
            );
            if resource["kind"] != "Namespace" {
                assert_eq!(resource["metadata"]["namespace"], "shop", "{resource:?}");
            }
        }
    }
}

#[test]
fn ports_probes_and_environment_match_the_binaries() {
    for gateway in [true, false] {
        let tree = render(gateway, SERVICES);
        let resources = base(&tree);
        for (binary, port) in binaries(gateway, SERVICES) {
            let deployment = find(&resources, "Deployment", &binary);
            let pod = &deployment["spec"]["template"]["spec"];
            let container = &pod["containers"][0];
            assert_eq!(container["ports"][0]["containerPort"].as_u64(), Some(port));
            assert_eq!(container["ports"][0]["name"], "http");
            for (probe, path) in [
                ("startupProbe", "/healthz"),
                ("livenessProbe", "/healthz"),
                ("readinessProbe", "/readyz"),
            ] {
                assert_eq!(
                    container[probe]["httpGet"]["path"], path,
                    "{binary} {probe}"
                );
                assert_eq!(
                    container[probe]["httpGet"]["port"], "http",
                    "{binary} {probe}"
                );
            }
            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        container["resources"][bound][resource].is_string(),
                        "{binary}"
                    );
                }
            }
            let env_from = container["envFrom"].as_sequence().unwrap();
            assert_eq!(
                env_from[0]["configMapRef"]["name"],
                format!("{binary}-config").as_str()
            );
            assert_eq!(
                env_from[1]["secretRef"]["name"],
                format!("{binary}-secrets").as_str()
            );
            assert_eq!(env_from[1]["secretRef"]["optional"], true);
            assert_eq!(pod["serviceAccountName"], binary.as_str());

            let config = &find(&resources, "ConfigMap", &format!("{binary}-config"))["data"];
            assert_eq!(config["HOST"], "0.0.0.0");
            assert_eq!(config["PORT"], port.to_string().as_str());
            assert_eq!(config["OTEL_SERVICE_NAME"], binary.as_str());
            assert!(config["RUST_LOG"].is_string());
            assert!(config["OTEL_EXPORTER_OTLP_ENDPOINT"].is_string());

            let service = find(&resources, "Service", &binary);
            assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(port));
            assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
            assert_eq!(
                service["spec"]["selector"],
                deployment["spec"]["selector"]["matchLabels"]
            );
            let hpa = find(&resources, "HorizontalPodAutoscaler", &binary);
            assert_eq!(hpa["apiVersion"], "autoscaling/v2");
            assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], binary.as_str());
        }
        if gateway {
            let config = &find(&resources, "ConfigMap", "gateway-config")["data"];
            for (index, (name, _)) in SERVICES.iter().enumerate() {
                let var = format!("{}_URL", name.to_uppercase().replace('-', "_"));
                let url = format!("http://{name}:{}", 8081 + index);
                assert_eq!(config[var.as_str()], url.as_str());
            }
        }
    }
}

#[test]
fn pods_are_hardened() {
    let tree = render(true, SERVICES);
    let resources = base(&tree);
    for deployment in all(&resources, "Deployment") {
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(65532));
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let security = &pod["containers"][0]["securityContext"];
        assert_eq!(security["runAsNonRoot"], true);
        assert_eq!(security["runAsUser"].as_u64(), Some(65532));
        assert_eq!(security["readOnlyRootFilesystem"], true);
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["capabilities"]["drop"][0], "ALL");
        assert!(
            deployment["spec"]["replicas"].is_null(),
            "the HPA owns replicas"
        );
        // Skipped checkov checks carry a reason.
        for (key, value) in deployment["metadata"]["annotations"].as_mapping().unwrap() {
            if str_of(key).starts_with("checkov.io/skip") {
                let (check, reason) = str_of(value).split_once('=').unwrap();
                assert!(
                    check.starts_with("CKV_K8S_") && reason.len() > 10,
                    "{value:?}"
                );
            }
        }
    }
    for account in all(&resources, "ServiceAccount") {
        assert_eq!(account["automountServiceAccountToken"], false);
    }
    // Secrets are referenced, never committed.
    for path in tree.paths().filter(|p| p.starts_with("deploy/k8s/")) {
        if path.ends_with(".yaml") {
            assert!(
                documents(&tree, path).iter().all(|d| d["kind"] != "Secret"),
                "{path} holds a Secret"
            );
        }
    }
}

/// The (namespace, pod name label) peers of a policy's first ingress rule.
fn ingress_peers(policy: &Value) -> Vec<(Option<String>, Option<String>)> {
    policy["spec"]["ingress"][0]["from"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|peer| {
            (
                peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                    .as_str()
                    .map(str::to_owned),
                peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                    .as_str()
                    .map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn network_policies_allow_only_the_architecture() {
    for gateway in [true, false] {
        let tree = render(gateway, SERVICES);
        let resources = base(&tree);
        let deny = find(&resources, "NetworkPolicy", "default-deny");
        assert_eq!(
            deny["spec"]["podSelector"],
            Value::Mapping(Default::default())
        );
        assert_eq!(deny["spec"]["policyTypes"][0], "Ingress");
        assert_eq!(deny["spec"]["policyTypes"][1], "Egress");
        assert!(deny["spec"]["ingress"].is_null() && deny["spec"]["egress"].is_null());
        let dns = find(&resources, "NetworkPolicy", "allow-dns-egress");
        assert_eq!(
            dns["spec"]["egress"][0]["ports"][0]["port"].as_u64(),
            Some(53)
        );

        let edge = (Some("gateway-system".to_owned()), None);
        for (binary, port) in binaries(gateway, SERVICES) {
            let policy = find(&resources, "NetworkPolicy", &format!("{binary}-ingress"));
            assert_eq!(
                policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
                binary.as_str()
            );
            for rule in policy["spec"]["ingress"].as_sequence().unwrap() {
                assert_eq!(rule["ports"][0]["port"].as_u64(), Some(port), "{binary}");
            }
            let expected = if gateway && binary != "gateway" {
                (None, Some("gateway".to_owned()))
            } else {
                edge.clone()
            };
            assert_eq!(ingress_peers(policy), vec![expected], "{binary}");
            // The second rule: Prometheus, for /metrics.
            assert_eq!(
                policy["spec"]["ingress"][1]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
                "prometheus"
            );
        }
        let egress = resources
            .iter()
            .find(|r| r["kind"] == "NetworkPolicy" && r["metadata"]["name"] == "gateway-egress");
        if gateway {
            let rules = egress.unwrap()["spec"]["egress"].as_sequence().unwrap();
            assert_eq!(rules.len(), SERVICES.len());
            for (index, (name, _)) in SERVICES.iter().enumerate() {
                assert_eq!(
                    rules[index]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
                    *name
                );
                assert_eq!(
                    rules[index]["ports"][0]["port"].as_u64(),
                    Some(8081 + index as u64)
                );
            }
        } else {
            assert!(egress.is_none());
        }
    }
}

#[test]
fn routes_reach_the_gateway_or_each_service() {
    let tree = render(true, SERVICES);
    let resources = base(&tree);
    let http = all(&resources, "HTTPRoute");
    assert_eq!(http.len(), 1);
    assert_eq!(http[0]["spec"]["parentRefs"][0]["name"], "edge");
    assert_eq!(
        http[0]["spec"]["parentRefs"][0]["namespace"],
        "gateway-system"
    );
    assert_eq!(
        http[0]["spec"]["rules"][0]["matches"][0]["path"]["value"],
        "/api"
    );
    assert_eq!(
        http[0]["spec"]["rules"][0]["backendRefs"][0]["name"],
        "gateway"
    );
    assert_eq!(
        http[0]["spec"]["rules"][0]["backendRefs"][0]["port"].as_u64(),
        Some(8080)
    );
    let grpc = find(&resources, "GRPCRoute", "order-items");
    assert_eq!(grpc["spec"]["parentRefs"][0]["sectionName"], "grpc");
    let rule = &grpc["spec"]["rules"][0];
    assert_eq!(
        rule["matches"][0]["method"]["service"],
        "order_items.v1.ItemService"
    );
    assert_eq!(rule["backendRefs"][0]["name"], "gateway");
    let gateway_port = rule["backendRefs"][0]["port"].as_u64().unwrap();
    let gateway_service = find(&resources, "Service", "gateway");
    let h2c = gateway_service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["port"].as_u64() == Some(gateway_port))
        .expect("the GRPCRoute's port on the gateway Service");
    assert_eq!(h2c["appProtocol"], "kubernetes.io/h2c");
    assert_eq!(h2c["targetPort"], "http");
    assert_eq!(all(&resources, "GRPCRoute").len(), 1);

    let tree = render(false, SERVICES);
    let resources = base(&tree);
    assert_eq!(all(&resources, "HTTPRoute").len(), SERVICES.len() - 1);
    for (index, (name, protocol)) in SERVICES.iter().enumerate() {
        let kind = if *protocol == "grpc" {
            "GRPCRoute"
        } else {
            "HTTPRoute"
        };
        let route = find(&resources, kind, name);
        let rule = &route["spec"]["rules"][0];
        assert_eq!(rule["backendRefs"][0]["name"], *name);
        assert_eq!(
            rule["backendRefs"][0]["port"].as_u64(),
            Some(8081 + index as u64)
        );
        if kind == "HTTPRoute" {
            assert_eq!(
                rule["matches"][0]["path"]["value"],
                format!("/api/{name}").as_str()
            );
            assert_eq!(
                rule["filters"][0]["urlRewrite"]["path"]["replacePrefixMatch"],
                "/"
            );
        }
    }

    // Only gRPC services, no gateway: no HTTPRoute at all.
    let tree = render(false, &[("ledger", "grpc")]);
    let resources = base(&tree);
    assert!(all(&resources, "HTTPRoute").is_empty());
    assert_eq!(all(&resources, "GRPCRoute").len(), 1);
    // No gRPC service: no GRPCRoute, and no gRPC port on the gateway.
    let tree = render(true, &[("catalog", "rest")]);
    let resources = base(&tree);
    assert!(all(&resources, "GRPCRoute").is_empty());
    assert_eq!(
        find(&resources, "Service", "gateway")["spec"]["ports"]
            .as_sequence()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn overlays_set_namespace_images_and_stricter_prod() {
    for gateway in [true, false] {
        let tree = render(gateway, SERVICES);
        for (overlay, tag) in [("dev", "main"), ("prod", "0.1.0")] {
            let path = format!("deploy/k8s/overlays/{overlay}/kustomization.yaml");
            let kustomization = &documents(&tree, &path)[0];
            assert_eq!(
                kustomization["namespace"],
                format!("shop-{overlay}").as_str()
            );
            assert_eq!(kustomization["resources"][0], "../../base");
            let images = kustomization["images"].as_sequence().unwrap();
            let names: Vec<String> = binaries(gateway, SERVICES)
                .into_iter()
                .map(|(binary, _)| format!("registry.example.com/shop/{binary}"))
                .collect();
            assert_eq!(
                images
                    .iter()
                    .map(|i| str_of(&i["name"]).to_owned())
                    .collect::<Vec<_>>(),
                names
            );
            assert!(images.iter().all(|i| i["newTag"] == tag), "{overlay}");
        }
        let prod = text(&tree, "deploy/k8s/overlays/prod/kustomization.yaml");
        assert!(
            prod.contains("path: /spec/minAvailable"),
            "prod PDBs need minAvailable"
        );
        let min_replicas = |overlay: &str| -> u64 {
            let text = text(
                &tree,
                &format!("deploy/k8s/overlays/{overlay}/kustomization.yaml"),
            );
            let document = &documents(
                &tree,
                &format!("deploy/k8s/overlays/{overlay}/kustomization.yaml"),
            )[0];
            let patch = document["patches"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|p| p["target"]["kind"] == "HorizontalPodAutoscaler")
                .unwrap_or_else(|| panic!("{text}"));
            let ops: Vec<Value> = serde_yaml::from_str(str_of(&patch["patch"])).unwrap();
            ops.iter()
                .find(|op| op["path"] == "/spec/minReplicas")
                .and_then(|op| op["value"].as_u64())
                .unwrap()
        };
        assert!(min_replicas("prod") > min_replicas("dev"));
        assert!(min_replicas("prod") >= 3);
    }
}

#[test]
fn free_text_is_escaped() {
    let tree = render(true, SERVICES);
    let namespace = find(&base(&tree), "Namespace", "shop").clone();
    // The description is not in the manifests: free text of any length would not fit
    // yamllint's line length. The owner is, as an annotation of the namespace.
    for path in tree.paths().filter(|p| p.starts_with("deploy/k8s/")) {
        assert!(!text(&tree, path).contains("not-comment"), "{path}");
    }
    let annotations = &namespace["metadata"]["annotations"];
    assert_eq!(annotations["a8r.io/owner"], OWNER);
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

fn render_with_broker(gateway: bool, services: &[(&str, &str)], broker: &str) -> FileTree {
    common::render(PartialAnswers {
        messaging: PartialMessaging {
            broker: Some(broker.into()),
        },
        ..answers(services, gateway)
    })
}

/// The container named like its Deployment.
fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// With `messaging.broker = "redis"`, the base: every service (never the gateway) reads
/// REDIS_URL from the Secret `messaging`, which the base does not hold, gets the
/// messaging settings and may reach TCP 6379.
#[test]
fn with_redis_the_services_get_the_secret_settings_and_egress() {
    for gateway in [true, false] {
        let tree = render_with_broker(gateway, SERVICES, "redis");
        let resources = base(&tree);
        assert!(
            all(&resources, "Secret").is_empty(),
            "no Secret is committed"
        );
        for (binary, _) in binaries(gateway, SERVICES) {
            let env = &container(find(&resources, "Deployment", &binary))["env"];
            let config = &find(&resources, "ConfigMap", &format!("{binary}-config"))["data"];
            let egress = resources.iter().find(|r| {
                r["kind"] == "NetworkPolicy"
                    && r["metadata"]["name"] == format!("{binary}-messaging-egress").as_str()
            });
            if binary == "gateway" {
                assert!(env.is_null(), "the gateway does not use the broker");
                assert!(config["MESSAGING_MAX_ATTEMPTS"].is_null());
                assert!(egress.is_none());
                continue;
            }
            assert_eq!(env[0]["name"], "REDIS_URL", "{binary}");
            let reference = &env[0]["valueFrom"]["secretKeyRef"];
            assert_eq!(reference["name"], "messaging");
            assert_eq!(reference["key"], "redis-url");
            assert!(reference["optional"].is_null(), "required: {binary}");
            for (variable, default) in [
                ("MESSAGING_MAX_ATTEMPTS", "5"),
                ("MESSAGING_RETRY_BASE_MS", "100"),
                ("MESSAGING_RETRY_MAX_MS", "5000"),
                ("MESSAGING_CLAIM_IDLE_MS", "30000"),
            ] {
                assert_eq!(config[variable], default, "{binary} {variable}");
            }
            let egress = egress.unwrap_or_else(|| panic!("{binary}: no messaging egress"));
            assert_eq!(
                egress["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
                binary.as_str()
            );
            assert_eq!(egress["spec"]["policyTypes"][0], "Egress");
            let rules = egress["spec"]["egress"].as_sequence().unwrap();
            assert_eq!(rules.len(), 1);
            assert_eq!(rules[0]["ports"][0]["port"].as_u64(), Some(6379));
            // Any address in the base: production's Redis is external.
            assert!(rules[0]["to"].is_null());
        }
    }
}

/// The dev overlay runs a hardened Redis that only the services reach, generates the
/// Secret with its address (no credential), and narrows the egress to it; prod does
/// neither and documents its Secret.
#[test]
fn with_redis_dev_runs_it_and_prod_expects_an_external_one() {
    let tree = render_with_broker(true, SERVICES, "redis");
    let dev = &documents(&tree, "deploy/k8s/overlays/dev/kustomization.yaml")[0];
    assert_eq!(dev["resources"][1], "redis.yaml");
    let generator = &dev["secretGenerator"][0];
    assert_eq!(generator["name"], "messaging");
    assert_eq!(generator["literals"][0], "redis-url=redis://redis:6379");
    assert_eq!(generator["literals"].as_sequence().unwrap().len(), 1);
    let narrowing = dev["patches"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["target"]["kind"] == "NetworkPolicy")
        .expect("dev narrows the egress to its redis pods");
    assert_eq!(narrowing["target"]["name"], ".*-messaging-egress");
    let ops: Vec<Value> = serde_yaml::from_str(str_of(&narrowing["patch"])).unwrap();
    assert_eq!(ops[0]["path"], "/spec/egress/0/to");
    assert_eq!(
        ops[0]["value"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "redis"
    );

    let redis = documents(&tree, "deploy/k8s/overlays/dev/redis.yaml");
    let deployment = find(&redis, "Deployment", "redis");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    assert_eq!(pod["serviceAccountName"], "redis");
    find(&redis, "ServiceAccount", "redis");
    let container = container(deployment);
    assert!(str_of(&container["image"]).starts_with("redis:7.4-alpine@sha256:"));
    assert_eq!(
        container["args"],
        serde_yaml::from_str::<Value>("[redis-server, --appendonly, 'yes']").unwrap()
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(
            container[probe]["exec"]["command"],
            serde_yaml::from_str::<Value>("[redis-cli, ping]").unwrap(),
            "{probe}"
        );
    }
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/data");
    assert!(pod["volumes"][0]["emptyDir"].is_mapping());
    let service = find(&redis, "Service", "redis");
    assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(6379));
    let ingress = find(&redis, "NetworkPolicy", "redis-ingress");
    assert_eq!(ingress["spec"]["policyTypes"][0], "Ingress");
    let rules = ingress["spec"]["ingress"].as_sequence().unwrap();
    assert_eq!(rules.len(), 1, "the services only");
    let from = &rules[0]["from"].as_sequence().unwrap();
    assert_eq!(from.len(), 1);
    assert_eq!(
        from[0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "service"
    );
    assert!(from[0]["namespaceSelector"].is_null());
    assert_eq!(rules[0]["ports"][0]["port"].as_u64(), Some(6379));

    let prod = &documents(&tree, "deploy/k8s/overlays/prod/kustomization.yaml")[0];
    assert_eq!(prod["resources"].as_sequence().unwrap().len(), 1);
    assert!(prod["secretGenerator"].is_null());
    let readme = text(&tree, "deploy/k8s/README.md");
    assert!(
        readme.contains("create secret generic messaging"),
        "{readme}"
    );
    assert!(readme.contains("--from-literal=redis-url="));
}

/// Without a broker: no Redis, no Secret reference, no egress to a broker.
#[test]
fn without_a_broker_nothing_of_redis() {
    let tree = render_with_broker(true, SERVICES, "none");
    assert!(tree.get("deploy/k8s/overlays/dev/redis.yaml").is_none());
    for path in tree.paths().filter(|p| p.starts_with("deploy/k8s/")) {
        let text = text(&tree, path);
        for needle in [
            "REDIS",
            "redis",
            "MESSAGING_",
            "secretGenerator",
            "messaging-egress",
        ] {
            assert!(!text.contains(needle), "{path} has {needle}");
        }
    }
}
