//! One #[test] per conformance case, run against $RUNTIME (default: the
//! workspace's target/release/berth-runtime). `cargo test -p spec-conformance`
//! fails if the runtime fails a check.

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { spec_conformance::run_named(stringify!($name)); })*

        /// Every case in the library has a #[test] here, and vice versa.
        #[test]
        fn every_case_has_a_test() {
            let here = [$(stringify!($name)),*];
            let lib: Vec<&str> = spec_conformance::all().iter().map(|c| c.name).collect();
            for n in &lib { assert!(here.contains(n), "case {n} has no #[test] in tests/conformance.rs"); }
            for n in &here { assert!(lib.contains(n), "#[test] {n} names no case"); }
        }
    };
}

conformance_tests![
    lifecycle_create_start_kill_delete,
    lifecycle_created_does_not_run_program,
    lifecycle_start_twice_fails,
    lifecycle_delete_running_needs_force,
    lifecycle_kill_stopped_fails,
    lifecycle_kill_delivers_signal,
    lifecycle_duplicate_id_fails,
    lifecycle_run_exit_code,
    lifecycle_exec_joins_container,
    state_json_shape,
    state_pid_file,
    state_stopped_after_exit,
    process_args_env_cwd,
    process_user_and_groups,
    process_hostname,
    mounts_default_set,
    mounts_bind_ro_and_rw,
    mounts_tmpfs_with_flags,
    mounts_readonly_root,
    mounts_writable_root,
    namespaces_all_new,
    namespaces_only_mount_new,
    namespaces_join_netns_by_path,
    namespaces_user_with_mappings,
    security_capabilities_default,
    security_capabilities_custom_root,
    security_capabilities_ambient_non_root,
    security_no_new_privileges_set,
    security_no_new_privileges_unset,
    security_seccomp_errno_ret,
    security_seccomp_arg_filter_default_eperm,
    security_masked_paths,
    security_readonly_paths,
    resources_memory_limit,
    resources_cpu,
    resources_pids_limit,
    resources_cgroup_created_and_removed,
    resources_rlimits,
    resources_oom_score_adj,
    resources_sysctl,
    resources_default_devices,
    resources_linux_devices,
    resources_device_cgroup_denies,
    hooks_order_state_and_namespaces,
    hooks_create_runtime_failure_fails_create,
    hooks_poststart_failure,
    hooks_poststop_failure_is_warning,
    terminal_console_socket,
    bad_input_malformed_config,
    bad_input_missing_rootfs,
    bad_input_unknown_namespace_type,
    bad_input_missing_executable,
    bad_input_bad_signal,
    bad_input_unknown_container_id,
    bad_input_path_traversal_id,
];
