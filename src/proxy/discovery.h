// Where an etcd-mesos cluster's clients connect: the client URLs of its current voting members,
// read from what the scheduler or the Mesos master publish. etcd-mesos-proxy points a local etcd
// gRPC proxy at these and follows them as members are replaced and the cluster is reseeded.
//
// Two sources, both parsed here as pure functions of the HTTP body so that every rule is tested
// without a network:
//   - the scheduler's `GET /members` (preferred: it knows which members are learners, which an
//     etcd client must not be sent to, and it is cheap to poll);
//   - the Mesos master's `GET /master/state`, for when only the master's address is known: the
//     RUNNING tasks of the framework with the given name. The client port comes from the task's
//     DiscoveryInfo (port named `etcd-client`; the original Go etcd-mesos marked it with protocol
//     `client`), else from the task ID `<name> <host> <peer> <client> <reseed>`.
//     The master cannot tell a learner from a voter, so while a replacement is catching up its
//     URL is listed too; etcd refuses most calls there, which clients see as a retryable error
//     until it is promoted. Prefer --scheduler where it is reachable.
//     Nor does the master say whether members serve https: the caller says so (--cacert).
//
// A TLS cluster's members serve https only. Their URLs say so (the scheduler's `clientUrl`), and
// RequireTlsFor refuses them without a CA bundle, so that the proxy never quietly dials plain http
// at a member that will only hang up.
//
// Threading: pure functions on values.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace etcd_mesos::proxy {

// Client URLs (`http://host:port` or `https://host:port`), sorted and without duplicates, so that
// two sets compare with ==.
using ClientUrls = std::vector<std::string>;

// The voters of the scheduler's /members answer whose task is RUNNING: each member's `clientUrl`
// (http or https), or `http://host:clientPort` from a scheduler that does not send one.
// kInvalidArgument when the body is not the /members JSON.
Result<ClientUrls> ClientUrlsFromMembers(std::string_view members_json);

// The RUNNING tasks of the one registered framework named `framework_name` in a master's
// /master/state. kNotFound (naming the frameworks that are there) when none has that name;
// kConflict when several do (two clusters under one name: which one is meant is not ours to
// guess); kInvalidArgument when the body is not master state. `scheme` is "http" or "https".
Result<ClientUrls> ClientUrlsFromMasterState(std::string_view state_json,
                                             std::string_view framework_name,
                                             std::string_view scheme = "http");

// OK unless some URL is https and `have_ca_bundle` is false: then kInvalidArgument naming the
// https URLs and the flags that fix it (--cacert, --cert, --key).
Status RequireTlsFor(const ClientUrls& urls, bool have_ca_bundle);

// "a,b,c": what etcdctl's --endpoints and ETCDCTL_ENDPOINTS take.
std::string JoinUrls(const ClientUrls& urls);

// For logs: "+http://a:1 -http://b:2" (what joined, what left).
std::string DescribeChange(const ClientUrls& before, const ClientUrls& after);

// The delay before retry number `attempt` (0 for the first): doubling from `min` up to `max`,
// then multiplied by a jitter factor in [0.5, 1.0] taken from `unit_random` (0..1), so that many
// proxies that lost the scheduler together do not come back in lockstep.
std::chrono::milliseconds BackoffDelay(int attempt, std::chrono::milliseconds min,
                                       std::chrono::milliseconds max, double unit_random);

}  // namespace etcd_mesos::proxy
