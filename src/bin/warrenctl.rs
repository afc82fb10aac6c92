//! `warrenctl`: command-line administration of a Warren broker, in the
//! manner of `rabbitmqctl` and `rabbitmqadmin`, over the management HTTP API
//! (so it also works against RabbitMQ's management plugin).
//!
//! ```text
//! warrenctl list_queues name messages consumers
//! warrenctl -p app-vhost --format json list_exchanges
//! warrenctl add_user alice s3cret --tags management
//! warrenctl export_definitions defs.json
//! ```

#[path = "warrenctl/client.rs"]
mod client;
#[path = "warrenctl/commands.rs"]
mod commands;
#[path = "warrenctl/table.rs"]
mod table;

use clap::{Args, Parser, Subcommand};
use client::{exit, Client, Failure};
use std::time::Duration;
use table::{Format, Output};

const EXIT_CODES: &str = "\
Connection: --url (or WARREN_MGMT_URL, e.g. http://127.0.0.1:15672) is used \
unless --host or --port is given. Credentials default to guest/guest, or \
WARREN_USER and WARREN_PASSWORD.

Columns of list_* commands are the API's JSON field names, dotted for nested \
fields (message_stats.publish, queue.name); `all` shows every field.

Exit codes:
   0  success
   2  not found: the queue, exchange, user, vhost or connection does not exist (HTTP 404)
  64  usage error: unknown command, option or column (EX_USAGE)
  65  data error: the broker rejected the request (HTTP 400/405/409), the object \
already exists, or an input file is not valid JSON (EX_DATAERR)
  66  an input file cannot be read (EX_NOINPUT)
  69  the management API cannot be reached, e.g. the broker is down (EX_UNAVAILABLE)
  70  unexpected answer from the broker, e.g. HTTP 5xx (EX_SOFTWARE)
  73  an output file cannot be written (EX_CANTCREAT)
  77  authentication failed or permission denied (HTTP 401/403) (EX_NOPERM)";

#[derive(Parser, Debug)]
#[command(
    name = "warrenctl",
    version,
    about = "Administer a Warren broker through its management HTTP API",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Management API host.
    #[arg(long, global = true)]
    host: Option<String>,
    /// Management API port [default: 15672].
    #[arg(long, global = true)]
    port: Option<u16>,
    /// Management API base URL (instead of --host/--port).
    #[arg(long, global = true, env = "WARREN_MGMT_URL")]
    url: Option<String>,
    /// User name for the management API.
    #[arg(
        short = 'u',
        long,
        global = true,
        env = "WARREN_USER",
        default_value = "guest"
    )]
    user: String,
    /// Password for the management API.
    #[arg(
        long,
        global = true,
        env = "WARREN_PASSWORD",
        default_value = "guest",
        hide_env_values = true,
        hide_default_value = true
    )]
    password: String,
    /// Virtual host the command applies to.
    #[arg(short = 'p', long, global = true, default_value = "/")]
    vhost: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Leave out the header line of tables.
    #[arg(long, global = true)]
    no_headers: bool,
    /// Print nothing on success for commands that change things.
    #[arg(short = 'q', long, global = true)]
    quiet: bool,
    /// Seconds to wait for the broker's answer.
    #[arg(long, global = true, default_value_t = 60)]
    timeout: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

// Subcommand arguments must not share an id with a global option (clap
// merges them): hence `new_password`/`username` rather than
// `password`/`user` below.

/// Columns of a listing, and whether to list every vhost.
#[derive(Args, Debug, Default)]
pub struct ListArgs {
    /// Columns to show (space- or comma-separated JSON field names).
    pub columns: Vec<String>,
    /// List objects of every virtual host instead of just --vhost.
    #[arg(short = 'a', long)]
    pub all_vhosts: bool,
}

/// Columns of a listing that is not per virtual host.
#[derive(Args, Debug, Default)]
pub struct Columns {
    /// Columns to show (space- or comma-separated JSON field names).
    pub columns: Vec<String>,
}

/// Command names are snake_case like rabbitmqctl's; `rename_all` would
/// make long options snake_case too, so multi-word options name
/// themselves (`--if-empty`).
#[derive(Subcommand, Debug)]
#[command(rename_all = "snake_case")]
pub enum Cmd {
    /// Broker overview: version, node, listeners, object and message totals.
    Status,
    /// Queues (default columns: name messages_ready messages_unacknowledged messages consumers).
    ListQueues(ListArgs),
    /// Exchanges (default columns: name type durable auto_delete internal).
    ListExchanges(ListArgs),
    /// Bindings (default columns: source destination destination_type routing_key arguments).
    ListBindings(ListArgs),
    /// AMQP connections of every vhost (default columns: name user vhost peer_host peer_port channels state).
    ListConnections(Columns),
    /// Channels of every vhost (default columns: name user vhost number consumer_count messages_unacknowledged prefetch_count confirm).
    ListChannels(Columns),
    /// Consumers (default columns: queue.name consumer_tag channel_details.name ack_required exclusive prefetch_count).
    ListConsumers(ListArgs),
    /// Users (default columns: name tags).
    ListUsers(Columns),
    /// Permissions in the vhost, or in all with -a (default columns: user vhost configure write read).
    ListPermissions(ListArgs),
    /// Topic permissions in the vhost, or in all with -a (default columns: user exchange write read).
    ListTopicPermissions(ListArgs),
    /// Permissions of one user in every vhost.
    ListUserPermissions {
        name: String,
        #[command(flatten)]
        columns: Columns,
    },
    /// Virtual hosts (default columns: name).
    ListVhosts(Columns),
    /// Create a user (fails if it exists).
    AddUser {
        name: String,
        #[arg(value_name = "PASSWORD")]
        new_password: String,
        /// Tags, comma-separated (administrator, management, monitoring, policymaker).
        #[arg(long, default_value = "")]
        tags: String,
    },
    /// Delete a user.
    DeleteUser { name: String },
    /// Set a user's password (tags are kept).
    ChangePassword {
        name: String,
        #[arg(value_name = "PASSWORD")]
        new_password: String,
    },
    /// Replace a user's tags (none clears them; the password is kept).
    SetUserTags { name: String, tags: Vec<String> },
    /// Check a user's password against the broker.
    AuthenticateUser {
        name: String,
        #[arg(value_name = "PASSWORD")]
        user_password: String,
    },
    /// Set a user's configure/write/read permission regexes in the vhost.
    SetPermissions {
        #[arg(value_name = "USER")]
        username: String,
        configure: String,
        write: String,
        read: String,
    },
    /// Set a user's topic permissions on a topic exchange in the vhost
    /// (regular expressions over routing keys: publish, bind).
    SetTopicPermissions {
        #[arg(value_name = "USER")]
        username: String,
        exchange: String,
        write: String,
        read: String,
    },
    /// Remove a user's topic permissions in the vhost (on one exchange, or all).
    ClearTopicPermissions {
        #[arg(value_name = "USER")]
        username: String,
        exchange: Option<String>,
    },
    /// Remove a user's permissions in the vhost.
    ClearPermissions {
        #[arg(value_name = "USER")]
        username: String,
    },
    /// Replace the vhost's limits with a JSON object, e.g.
    /// '{"max-connections": 100, "max-queues": 500}' (negative = no limit).
    SetVhostLimits { definition: String },
    /// Remove every limit of the vhost.
    ClearVhostLimits,
    /// The vhost's limits (every vhost's with --global).
    ListVhostLimits {
        #[arg(long)]
        global: bool,
    },
    /// Replace a user's limits with a JSON object, e.g.
    /// '{"max-connections": 10, "max-channels": 100}' (negative = no limit).
    SetUserLimits { name: String, definition: String },
    /// Remove one limit of a user (max-connections, max-channels), or `all`.
    ClearUserLimits { name: String, limit: String },
    /// Every user's limits (one user's with --user).
    ListUserLimits {
        #[arg(long)]
        user: Option<String>,
    },
    /// Set a policy in the vhost: NAME PATTERN DEFINITION (a JSON object of
    /// RabbitMQ policy settings, e.g. '{"message-ttl": 60000}').
    SetPolicy(PolicyArgs),
    /// Remove a policy from the vhost.
    ClearPolicy { name: String },
    /// The vhost's policies.
    ListPolicies,
    /// Set an operator policy (administrators; limits users' policies).
    SetOperatorPolicy(PolicyArgs),
    /// Remove an operator policy from the vhost.
    ClearOperatorPolicy { name: String },
    /// The vhost's operator policies.
    ListOperatorPolicies,
    /// Create a virtual host.
    AddVhost { name: String },
    /// Delete a virtual host and everything in it.
    DeleteVhost { name: String },
    /// Declare a queue in the vhost.
    DeclareQueue {
        name: String,
        /// Survive a broker restart.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        durable: bool,
        #[arg(long = "auto-delete")]
        auto_delete: bool,
        /// Queue arguments as a JSON object, e.g. '{"x-message-ttl":60000}'.
        #[arg(long)]
        arguments: Option<String>,
    },
    /// Delete a queue.
    DeleteQueue {
        name: String,
        /// Only if it has no consumers.
        #[arg(long = "if-unused")]
        if_unused: bool,
        /// Only if it has no messages.
        #[arg(long = "if-empty")]
        if_empty: bool,
    },
    /// Remove every ready message from a queue.
    PurgeQueue { name: String },
    /// Declare an exchange in the vhost.
    DeclareExchange {
        name: String,
        /// direct, fanout, topic or headers.
        #[arg(default_value = "direct")]
        kind: String,
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        durable: bool,
        #[arg(long = "auto-delete")]
        auto_delete: bool,
        #[arg(long)]
        internal: bool,
        /// Exchange arguments as a JSON object.
        #[arg(long)]
        arguments: Option<String>,
    },
    /// Delete an exchange.
    DeleteExchange {
        name: String,
        /// Only if it has no bindings.
        #[arg(long = "if-unused")]
        if_unused: bool,
    },
    /// Bind a queue (or, with --destination-type exchange, an exchange) to an exchange.
    DeclareBinding {
        source: String,
        destination: String,
        #[arg(long = "routing-key", short = 'k', default_value = "")]
        routing_key: String,
        #[arg(long = "destination-type", default_value = "queue", value_parser = ["queue", "exchange"])]
        destination_type: String,
        /// Binding arguments as a JSON object.
        #[arg(long)]
        arguments: Option<String>,
    },
    /// Publish one message through an exchange ("" or amq.default for the default exchange).
    Publish {
        exchange: String,
        routing_key: String,
        payload: String,
        /// Mark the message persistent (delivery_mode 2).
        #[arg(long)]
        persistent: bool,
    },
    /// Fetch messages from a queue (requeued unless --ack).
    Get {
        queue: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Remove the messages instead of requeueing them.
        #[arg(long)]
        ack: bool,
    },
    /// Close an AMQP connection by name (see list_connections).
    CloseConnection {
        name: String,
        #[arg(default_value = "Closed via warrenctl")]
        reason: String,
    },
    /// Write every definition (users, vhosts, permissions, exchanges, queues, bindings) as JSON.
    ExportDefinitions {
        /// File to write, or - for standard output.
        #[arg(default_value = "-")]
        file: String,
    },
    /// Import definitions in RabbitMQ's JSON format.
    ImportDefinitions {
        /// File to read, or - for standard input.
        file: String,
    },
}

impl Cli {
    fn base_url(&self) -> String {
        match (&self.host, self.port, &self.url) {
            (None, None, Some(url)) => url.clone(),
            (host, port, _) => format!(
                "http://{}:{}",
                host.as_deref().unwrap_or("127.0.0.1"),
                port.unwrap_or(15672)
            ),
        }
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let client = Client::new(
        &cli.base_url(),
        &cli.user,
        &cli.password,
        Duration::from_secs(cli.timeout.max(1)),
    );
    let out = Output {
        format: cli.format,
        headers: !cli.no_headers,
    };
    let ctx = commands::Ctx {
        client,
        out,
        vhost: cli.vhost.clone(),
        quiet: cli.quiet || cli.format == Format::Json,
    };
    match commands::run(&ctx, cli.cmd) {
        Ok(()) => {}
        Err(Failure { code, message }) => {
            eprintln!("warrenctl: {message}");
            std::process::exit(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn positional_password_and_user_do_not_replace_the_global_ones() {
        let cli = Cli::try_parse_from([
            "warrenctl",
            "--user",
            "admin",
            "--password",
            "secret",
            "add_user",
            "bob",
            "bobpw",
        ])
        .unwrap();
        assert_eq!(
            (cli.user.as_str(), cli.password.as_str()),
            ("admin", "secret")
        );
        match cli.cmd {
            Cmd::AddUser {
                name, new_password, ..
            } => assert_eq!((name.as_str(), new_password.as_str()), ("bob", "bobpw")),
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from([
            "warrenctl",
            "-u",
            "admin",
            "set_permissions",
            "bob",
            ".*",
            ".*",
            ".*",
        ])
        .unwrap();
        assert_eq!(cli.user, "admin");
    }

    #[test]
    fn long_options_are_kebab_case() {
        for args in [
            &["list_queues", "--all-vhosts"][..],
            &["delete_queue", "q", "--if-empty", "--if-unused"],
            &["declare_queue", "q", "--auto-delete", "--durable", "false"],
            &[
                "declare_binding",
                "x",
                "q",
                "--routing-key",
                "k",
                "--destination-type",
                "queue",
            ],
            &["--no-headers", "list_users"],
        ] {
            let mut v = vec!["warrenctl"];
            v.extend_from_slice(args);
            if let Err(e) = Cli::try_parse_from(&v) {
                panic!("{args:?}: {e}");
            }
        }
    }

    #[test]
    fn url_is_used_unless_host_or_port_is_given() {
        let parse = |args: &[&str]| {
            let mut v = vec!["warrenctl"];
            v.extend_from_slice(args);
            v.push("status");
            Cli::try_parse_from(v).unwrap().base_url()
        };
        assert_eq!(parse(&[]), "http://127.0.0.1:15672");
        assert_eq!(parse(&["--url", "http://h:1"]), "http://h:1");
        assert_eq!(
            parse(&["--url", "http://h:1", "--port", "2"]),
            "http://127.0.0.1:2"
        );
        assert_eq!(parse(&["--host", "x"]), "http://x:15672");
    }
}

/// `set_policy` / `set_operator_policy` arguments, in rabbitmqctl's order.
#[derive(clap::Args, Debug)]
pub struct PolicyArgs {
    /// Policy name.
    pub name: String,
    /// Regular expression matched against queue and exchange names.
    pub pattern: String,
    /// JSON object of settings.
    pub definition: String,
    /// Higher wins when several policies match.
    #[arg(long, default_value_t = 0)]
    pub priority: i64,
    /// queues, exchanges or all.
    #[arg(long, default_value = "all")]
    pub apply_to: String,
}
