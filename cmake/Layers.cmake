# The direction of dependencies of DESIGN.md, as a build rule. Each library of ours names the
# libraries of ours it may link (a regular expression over target names). A link outside its
# row, or a library missing from the table, stops the configure step: a layering mistake is
# caught when it is written, not when it has grown roots. Foreign libraries are not checked.
#
#   common <- net <- mesos clients, etcd <- shells <- proxy, apps
#   common <- tls (the cluster's PKI, on OpenSSL) <- the scheduler's and executor's shells
#   common <- flags (CLI11) <- the scheduler's and the proxy's flags, apps
#   common <- store;  mesos types <- the pure cores (which link nothing that does I/O)
#   local (etcd-mesos-local) never reaches the scheduler, executor, etcd or store libraries; its
#   master contends in ZooKeeper with the schedulers' election (em_zk_election).
#   The pure cores and the simulator link nothing that does I/O: their rows say so.
set(EM_LAYERS
  "em_common="
  "em_flags=em_common"
  "em_tls=em_common"
  "em_net=em_common"
  "em_mesos_proto="
  "em_mesos_codec=em_common|em_mesos_proto"
  "em_mesos_scheduler=em_common|em_net|em_mesos_codec|em_mesos_proto"
  "em_mesos_executor=em_common|em_net|em_mesos_codec|em_mesos_proto"
  "em_mesos_detector=em_common|em_mesos_codec|em_mesos_proto"
  "em_etcd=em_common|em_net"
  "em_store_record=em_common"
  "em_store=em_common|em_store_record"
  "em_zk_election=em_common"
  "em_local_base=em_common|em_mesos_codec|em_mesos_proto"
  "em_local_agent=em_common|em_net|em_mesos_codec|em_mesos_proto|em_local_base"
  "em_local_master=em_common|em_net|em_mesos_codec|em_mesos_proto|em_mesos_detector|em_zk_election|em_local_base"
  "em_local_cluster=em_local_base|em_local_agent|em_local_master"
  "em_executor_config=em_common"
  "em_executor_core=em_common|em_executor_config|em_mesos_proto"
  "em_executor_shell=em_common|em_net|em_etcd|em_tls|em_mesos_.*|em_executor_core|em_executor_config"
  "em_scheduler_core=em_common|em_mesos_proto"
  "em_scheduler_state=em_common|em_scheduler_core"
  "em_scheduler_flags=em_common|em_flags|em_scheduler_core"
  "em_scheduler_certs=em_common|em_tls|em_scheduler_core"
  "em_scheduler_shell=em_common|em_net|em_etcd|em_tls|em_scheduler_certs|em_store|em_zk_election|em_mesos_.*|em_executor_config|em_executor_shell|em_scheduler_core|em_scheduler_state|em_scheduler_flags"
  "em_proxy_discovery=em_common|em_flags"
  "em_proxy=em_common|em_net|em_tls|em_mesos_.*|em_etcd|em_executor_.*|em_proxy_discovery"
  "em_sim=em_common|em_scheduler_core|em_executor_core|em_store_record")

function(em_check_layers)
  foreach(row ${EM_LAYERS})
    string(REGEX REPLACE "=.*" "" lib "${row}")
    set(_em_known_${lib} TRUE)
    if(NOT TARGET ${lib})
      message(FATAL_ERROR "cmake/Layers.cmake names ${lib}, which no CMakeLists.txt defines")
    endif()
  endforeach()
  get_property(ours GLOBAL PROPERTY EM_LIBRARIES)
  foreach(lib ${ours})
    if(NOT _em_known_${lib})
      message(FATAL_ERROR "${lib} has no row in cmake/Layers.cmake: say which of our libraries "
                          "it may link")
    endif()
  endforeach()
  foreach(row ${EM_LAYERS})
    string(REGEX REPLACE "=.*" "" lib "${row}")
    string(REGEX REPLACE "^[^=]*=" "" allowed "${row}")
    get_target_property(deps ${lib} INTERFACE_LINK_LIBRARIES)
    foreach(dep ${deps})
      if(dep MATCHES "^em_" AND NOT dep MATCHES "^(${allowed})$")
        message(FATAL_ERROR "${lib} links ${dep}, against the direction of dependencies in "
                            "cmake/Layers.cmake (DESIGN.md): ${lib} may link only '${allowed}'")
      endif()
    endforeach()
  endforeach()
endfunction()
