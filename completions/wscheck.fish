# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_wscheck_global_optspecs
    string join \n H/header= origin= no-origin subprotocol= k/insecure cacert= connect-to= resolve= timeout= connect-timeout= allow-plaintext-credentials instance= x/proxy= noproxy= path= ports= schemes= only message= no-echo protocol= stomp-header= format= v/verbose hold= ping-interval= sizes= count= connections= polling routes-file= h/help V/version
end

function __fish_wscheck_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_wscheck_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_wscheck_using_subcommand
    set -l cmd (__fish_wscheck_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c wscheck -n "__fish_wscheck_needs_command" -s H -l header -d 'Extra request header, curl style (repeatable): -H \'Authorization: Bearer x\'' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l origin -d 'Origin header to send (default: https://<host> for wss://, http://<host> for ws://; the SAP approuter checks it)' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l subprotocol -d 'Offer this subprotocol (repeatable); the report shows what the server picked' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l cacert -d 'Trust the CA certificates in this PEM file instead of the built-in Mozilla roots' -r -F
complete -c wscheck -n "__fish_wscheck_needs_command" -l connect-to -d 'Connect to HOST2:PORT2 instead of HOST1:PORT1 (curl semantics; Host and SNI stay the route\'s). Empty parts match any host/port or keep the original. Repeatable' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l resolve -d 'Use ADDR for HOST:PORT instead of DNS (curl semantics). Repeatable' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l timeout -d 'Time limit of one probe, all stages together' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l connect-timeout -d 'Time limit of each of DNS, TCP connect and TLS handshake' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l instance -d 'Target one app instance with `X-Cf-App-Instance: APP_GUID:INDEX` (`cf app APP --guid`)' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -s x -l proxy -d 'Tunnel through this HTTP proxy with CONNECT: http://[user:pass@]host:port. Overrides wss_proxy, https_proxy, HTTPS_PROXY, ws_proxy, http_proxy from the environment' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l noproxy -d 'Hosts that bypass the proxy, comma-separated (overrides no_proxy / NO_PROXY)' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l path -d 'Path (and query) to request, replacing the one in TARGET' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l ports -d 'Explicit ports to try, comma-separated; `default` stands for the URL without a port. Replaces the default matrix (default,443|80,8080,4443)' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l schemes -d 'Schemes to try, comma-separated' -r -f -a "ws\t''
wss\t''"
complete -c wscheck -n "__fish_wscheck_needs_command" -l message -d 'Text to send for the echo check (default: a random nonce)' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l protocol -d 'What to speak after the upgrade: `auto` detects socket.io by its path (`/socket.io/`, tried on a bare route whose upgrade fails) or its first frame, GraphQL by its path (`/graphql`, `/subscriptions`, then offering its subprotocols), STOMP by a path segment naming it, GraphQL or STOMP by the subprotocol picked, SockJS by its greeting at the path, a STOMP broker by its silence to the echo, and echoes otherwise; `raw` only echoes' -r -f -a "auto\t'Detect the protocol (socket.io), else echo'
raw\t'A plain WebSocket: the echo only'
socketio\t'socket.io (Engine.IO v3/v4): connect the default namespace'
graphql\t'GraphQL over WebSocket (graphql-transport-ws, legacy graphql-ws): connection_init'
stomp\t'STOMP 1.2/1.1/1.0 (RabbitMQ Web-STOMP, Spring): CONNECT, then CONNECTED or ERROR'
sockjs\t'SockJS: GET <path>/info, then its WebSocket transport and the `o` frame'"
complete -c wscheck -n "__fish_wscheck_needs_command" -l stomp-header -d 'A header for STOMP\'s CONNECT frame (repeatable), e.g. \'host:/\' (RabbitMQ\'s virtual host), \'login:guest\', \'passcode:...\' (never shown in the report)' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l format -d 'Report format' -r -f -a "table\t'A table, explanations and a verdict, for people'
json\t'One JSON document (a stable contract, see schema_version)'
markdown\t'A Markdown block to paste into a support ticket, secrets redacted'"
complete -c wscheck -n "__fish_wscheck_needs_command" -l hold -d 'Deep check: keep the best working connection idle this long and report when and how it was cut (e.g. 90s)' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l ping-interval -d 'With --hold: send a ping this often, to show that pings keep the connection alive' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l sizes -d 'Deep check: echo messages of these sizes, text and binary (e.g. 1KiB,64KiB,1MiB,16MiB)' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l count -d 'Deep check: this many round trips over one connection; min / median / p99 / max' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l connections -d 'Deep check: open this many connections and report which app instances answered; on a socket.io URL, also run as many long-polling sessions (see --polling)' -r
complete -c wscheck -n "__fish_wscheck_needs_command" -l routes-file -d 'Probe every route of this file (one a line; blank lines and # comments ignored), a few at a time; one summary table, then the details of the failing routes' -r -F
complete -c wscheck -n "__fish_wscheck_needs_command" -l no-origin -d 'Send no Origin header'
complete -c wscheck -n "__fish_wscheck_needs_command" -s k -l insecure -d 'Do not verify TLS certificates (the report still says what was wrong with them)'
complete -c wscheck -n "__fish_wscheck_needs_command" -l allow-plaintext-credentials -d 'Send Authorization, Cookie and user:pass@ also over plaintext ws:// (never by default)'
complete -c wscheck -n "__fish_wscheck_needs_command" -l only -d 'Probe only TARGET as given (or wss://<route> for a bare route), no neighbours'
complete -c wscheck -n "__fish_wscheck_needs_command" -l no-echo -d 'Skip the echo stage: a URL works once the WebSocket opens (for apps that must not receive a stray message)'
complete -c wscheck -n "__fish_wscheck_needs_command" -s v -l verbose -d 'Print each handshake request and response (secrets redacted)'
complete -c wscheck -n "__fish_wscheck_needs_command" -l polling -d 'Deep check: open socket.io (Engine.IO) long-polling sessions, each request on a new connection, and report sessions lost between instances (sticky sessions needed)'
complete -c wscheck -n "__fish_wscheck_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wscheck -n "__fish_wscheck_needs_command" -s V -l version -d 'Print version'
complete -c wscheck -n "__fish_wscheck_needs_command" -a "demo" -d 'Start the bundled echo server behind a local TLS-terminating router on loopback, probe it as a route, and print the report: what `wscheck <route>` shows on CF'
complete -c wscheck -n "__fish_wscheck_needs_command" -a "load" -d 'Load a route: N concurrent WebSockets, echoed messages closed-loop or at a rate (or held idle with --rate 0); connections achieved, messages/s, latency percentiles, errors by kind; every echo checked. Exit 0 when nothing was lost'
complete -c wscheck -n "__fish_wscheck_needs_command" -a "app" -d 'Check your own app the way Cloud Foundry will run it, before `cf push`: start it from its manifest with CF\'s environment and a free $PORT, run CF\'s health check, read where it listens, probe its WebSocket directly and through a local gorouter stand-in, stop it with SIGTERM. Exit 0 when it would pass the health check and its WebSocket works through the router'
complete -c wscheck -n "__fish_wscheck_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wscheck -n "__fish_wscheck_using_subcommand demo" -l format -d 'Report format' -r -f -a "table\t'A table, explanations and a verdict, for people'
json\t'One JSON document (a stable contract, see schema_version)'
markdown\t'A Markdown block to paste into a support ticket, secrets redacted'"
complete -c wscheck -n "__fish_wscheck_using_subcommand demo" -l scenario -d 'What to stage: the healthy route, or a failure to see before meeting it' -r -f -a "healthy\t'The route works (exit 0)'
upgrade-stripped\t'The router drops Upgrade/Connection; the app answers 426 (exit 1)'
app-down\t'The app is down; the router answers 502 endpoint_failure (exit 1)'"
complete -c wscheck -n "__fish_wscheck_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l connections -d 'Concurrent WebSockets to open' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l duration -d 'How long to measure (after ramp-up and warm-up)' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l rate -d 'Total messages per second over all connections; without it, each connection sends its next message when the last echo is back; 0 holds the connections idle' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l size -d 'Message size (at least 32 B)' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l in-flight -d 'Closed loop: messages each connection keeps in flight (sent, echo not yet back). 1 is ping-pong; more pipelines them, as a streaming client does' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l ramp-up -d 'Spread the connection openings over this time' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l warmup -d 'Run this long before measuring' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l format -d 'Report format' -r -f -a "table\t'A table, explanations and a verdict, for people'
json\t'One JSON document (a stable contract, see schema_version)'
markdown\t'A Markdown block to paste into a support ticket, secrets redacted'"
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -s H -l header -d 'Extra request header, curl style (repeatable): -H \'Authorization: Bearer x\'' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l origin -d 'Origin header to send (default: https://<host> for wss://, http://<host> for ws://; the SAP approuter checks it)' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l subprotocol -d 'Offer this subprotocol (repeatable); the report shows what the server picked' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l cacert -d 'Trust the CA certificates in this PEM file instead of the built-in Mozilla roots' -r -F
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l connect-to -d 'Connect to HOST2:PORT2 instead of HOST1:PORT1 (curl semantics; Host and SNI stay the route\'s). Empty parts match any host/port or keep the original. Repeatable' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l resolve -d 'Use ADDR for HOST:PORT instead of DNS (curl semantics). Repeatable' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l timeout -d 'Time limit of one probe, all stages together' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l connect-timeout -d 'Time limit of each of DNS, TCP connect and TLS handshake' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l instance -d 'Target one app instance with `X-Cf-App-Instance: APP_GUID:INDEX` (`cf app APP --guid`)' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -s x -l proxy -d 'Tunnel through this HTTP proxy with CONNECT: http://[user:pass@]host:port. Overrides wss_proxy, https_proxy, HTTPS_PROXY, ws_proxy, http_proxy from the environment' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l noproxy -d 'Hosts that bypass the proxy, comma-separated (overrides no_proxy / NO_PROXY)' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l no-origin -d 'Send no Origin header'
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -s k -l insecure -d 'Do not verify TLS certificates (the report still says what was wrong with them)'
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -l allow-plaintext-credentials -d 'Send Authorization, Cookie and user:pass@ also over plaintext ws:// (never by default)'
complete -c wscheck -n "__fish_wscheck_using_subcommand load" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wscheck -n "__fish_wscheck_using_subcommand app" -l manifest -d 'The manifest to read instead of DIR/manifest.yml' -r -F
complete -c wscheck -n "__fish_wscheck_using_subcommand app" -l app -d 'The app of a multi-app manifest' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand app" -l path -d 'The WebSocket path (default: the first route\'s path, or /)' -r
complete -c wscheck -n "__fish_wscheck_using_subcommand app" -l format -d 'Report format' -r -f -a "table\t'A table, explanations and a verdict, for people'
json\t'One JSON document (a stable contract, see schema_version)'
markdown\t'A Markdown block to paste into a support ticket, secrets redacted'"
complete -c wscheck -n "__fish_wscheck_using_subcommand app" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wscheck -n "__fish_wscheck_using_subcommand help; and not __fish_seen_subcommand_from demo load app help" -f -a "demo" -d 'Start the bundled echo server behind a local TLS-terminating router on loopback, probe it as a route, and print the report: what `wscheck <route>` shows on CF'
complete -c wscheck -n "__fish_wscheck_using_subcommand help; and not __fish_seen_subcommand_from demo load app help" -f -a "load" -d 'Load a route: N concurrent WebSockets, echoed messages closed-loop or at a rate (or held idle with --rate 0); connections achieved, messages/s, latency percentiles, errors by kind; every echo checked. Exit 0 when nothing was lost'
complete -c wscheck -n "__fish_wscheck_using_subcommand help; and not __fish_seen_subcommand_from demo load app help" -f -a "app" -d 'Check your own app the way Cloud Foundry will run it, before `cf push`: start it from its manifest with CF\'s environment and a free $PORT, run CF\'s health check, read where it listens, probe its WebSocket directly and through a local gorouter stand-in, stop it with SIGTERM. Exit 0 when it would pass the health check and its WebSocket works through the router'
complete -c wscheck -n "__fish_wscheck_using_subcommand help; and not __fish_seen_subcommand_from demo load app help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
