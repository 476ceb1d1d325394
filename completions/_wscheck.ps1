
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'wscheck' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'wscheck'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'wscheck' {
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'Extra request header, curl style (repeatable): -H ''Authorization: Bearer x''')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Extra request header, curl style (repeatable): -H ''Authorization: Bearer x''')
            [CompletionResult]::new('--origin', '--origin', [CompletionResultType]::ParameterName, 'Origin header to send (default: https://<host> for wss://, http://<host> for ws://; the SAP approuter checks it)')
            [CompletionResult]::new('--subprotocol', '--subprotocol', [CompletionResultType]::ParameterName, 'Offer this subprotocol (repeatable); the report shows what the server picked')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file instead of the built-in Mozilla roots')
            [CompletionResult]::new('--connect-to', '--connect-to', [CompletionResultType]::ParameterName, 'Connect to HOST2:PORT2 instead of HOST1:PORT1 (curl semantics; Host and SNI stay the route''s). Empty parts match any host/port or keep the original. Repeatable')
            [CompletionResult]::new('--resolve', '--resolve', [CompletionResultType]::ParameterName, 'Use ADDR for HOST:PORT instead of DNS (curl semantics). Repeatable')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Time limit of one probe, all stages together')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Time limit of each of DNS, TCP connect and TLS handshake')
            [CompletionResult]::new('--instance', '--instance', [CompletionResultType]::ParameterName, 'Target one app instance with `X-Cf-App-Instance: APP_GUID:INDEX` (`cf app APP --guid`)')
            [CompletionResult]::new('-x', '-x', [CompletionResultType]::ParameterName, 'Tunnel through this HTTP proxy with CONNECT: http://[user:pass@]host:port. Overrides wss_proxy, https_proxy, HTTPS_PROXY, ws_proxy, http_proxy from the environment')
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'Tunnel through this HTTP proxy with CONNECT: http://[user:pass@]host:port. Overrides wss_proxy, https_proxy, HTTPS_PROXY, ws_proxy, http_proxy from the environment')
            [CompletionResult]::new('--noproxy', '--noproxy', [CompletionResultType]::ParameterName, 'Hosts that bypass the proxy, comma-separated (overrides no_proxy / NO_PROXY)')
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Path (and query) to request, replacing the one in TARGET')
            [CompletionResult]::new('--ports', '--ports', [CompletionResultType]::ParameterName, 'Explicit ports to try, comma-separated; `default` stands for the URL without a port. Replaces the default matrix (default,443|80,8080,4443)')
            [CompletionResult]::new('--schemes', '--schemes', [CompletionResultType]::ParameterName, 'Schemes to try, comma-separated')
            [CompletionResult]::new('--message', '--message', [CompletionResultType]::ParameterName, 'Text to send for the echo check (default: a random nonce)')
            [CompletionResult]::new('--protocol', '--protocol', [CompletionResultType]::ParameterName, 'What to speak after the upgrade: `auto` detects socket.io by its path (`/socket.io/`, tried on a bare route whose upgrade fails) or its first frame, GraphQL by its path (`/graphql`, `/subscriptions`, then offering its subprotocols), STOMP by a path segment naming it, GraphQL or STOMP by the subprotocol picked, SockJS by its greeting at the path, a STOMP broker by its silence to the echo, and echoes otherwise; `raw` only echoes')
            [CompletionResult]::new('--stomp-header', '--stomp-header', [CompletionResultType]::ParameterName, 'A header for STOMP''s CONNECT frame (repeatable), e.g. ''host:/'' (RabbitMQ''s virtual host), ''login:guest'', ''passcode:...'' (never shown in the report)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Report format')
            [CompletionResult]::new('--hold', '--hold', [CompletionResultType]::ParameterName, 'Deep check: keep the best working connection idle this long and report when and how it was cut (e.g. 90s)')
            [CompletionResult]::new('--ping-interval', '--ping-interval', [CompletionResultType]::ParameterName, 'With --hold: send a ping this often, to show that pings keep the connection alive')
            [CompletionResult]::new('--sizes', '--sizes', [CompletionResultType]::ParameterName, 'Deep check: echo messages of these sizes, text and binary (e.g. 1KiB,64KiB,1MiB,16MiB)')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Deep check: this many round trips over one connection; min / median / p99 / max')
            [CompletionResult]::new('--connections', '--connections', [CompletionResultType]::ParameterName, 'Deep check: open this many connections and report which app instances answered; on a socket.io URL, also run as many long-polling sessions (see --polling)')
            [CompletionResult]::new('--routes-file', '--routes-file', [CompletionResultType]::ParameterName, 'Probe every route of this file (one a line; blank lines and # comments ignored), a few at a time; one summary table, then the details of the failing routes')
            [CompletionResult]::new('--no-origin', '--no-origin', [CompletionResultType]::ParameterName, 'Send no Origin header')
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'Do not verify TLS certificates (the report still says what was wrong with them)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify TLS certificates (the report still says what was wrong with them)')
            [CompletionResult]::new('--allow-plaintext-credentials', '--allow-plaintext-credentials', [CompletionResultType]::ParameterName, 'Send Authorization, Cookie and user:pass@ also over plaintext ws:// (never by default)')
            [CompletionResult]::new('--only', '--only', [CompletionResultType]::ParameterName, 'Probe only TARGET as given (or wss://<route> for a bare route), no neighbours')
            [CompletionResult]::new('--no-echo', '--no-echo', [CompletionResultType]::ParameterName, 'Skip the echo stage: a URL works once the WebSocket opens (for apps that must not receive a stray message)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print each handshake request and response (secrets redacted)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print each handshake request and response (secrets redacted)')
            [CompletionResult]::new('--polling', '--polling', [CompletionResultType]::ParameterName, 'Deep check: open socket.io (Engine.IO) long-polling sessions, each request on a new connection, and report sessions lost between instances (sticky sessions needed)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Start the bundled echo server behind a local TLS-terminating router on loopback, probe it as a route, and print the report: what `wscheck <route>` shows on CF')
            [CompletionResult]::new('load', 'load', [CompletionResultType]::ParameterValue, 'Load a route: N concurrent WebSockets, echoed messages closed-loop or at a rate (or held idle with --rate 0); connections achieved, messages/s, latency percentiles, errors by kind; every echo checked. Exit 0 when nothing was lost')
            [CompletionResult]::new('app', 'app', [CompletionResultType]::ParameterValue, 'Check your own app the way Cloud Foundry will run it, before `cf push`: start it from its manifest with CF''s environment and a free $PORT, run CF''s health check, read where it listens, probe its WebSocket directly and through a local gorouter stand-in, stop it with SIGTERM. Exit 0 when it would pass the health check and its WebSocket works through the router')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wscheck;demo' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Report format')
            [CompletionResult]::new('--scenario', '--scenario', [CompletionResultType]::ParameterName, 'What to stage: the healthy route, or a failure to see before meeting it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'wscheck;load' {
            [CompletionResult]::new('--connections', '--connections', [CompletionResultType]::ParameterName, 'Concurrent WebSockets to open')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'How long to measure (after ramp-up and warm-up)')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Total messages per second over all connections; without it, each connection sends its next message when the last echo is back; 0 holds the connections idle')
            [CompletionResult]::new('--size', '--size', [CompletionResultType]::ParameterName, 'Message size (at least 32 B)')
            [CompletionResult]::new('--in-flight', '--in-flight', [CompletionResultType]::ParameterName, 'Closed loop: messages each connection keeps in flight (sent, echo not yet back). 1 is ping-pong; more pipelines them, as a streaming client does')
            [CompletionResult]::new('--ramp-up', '--ramp-up', [CompletionResultType]::ParameterName, 'Spread the connection openings over this time')
            [CompletionResult]::new('--warmup', '--warmup', [CompletionResultType]::ParameterName, 'Run this long before measuring')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Report format')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'Extra request header, curl style (repeatable): -H ''Authorization: Bearer x''')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Extra request header, curl style (repeatable): -H ''Authorization: Bearer x''')
            [CompletionResult]::new('--origin', '--origin', [CompletionResultType]::ParameterName, 'Origin header to send (default: https://<host> for wss://, http://<host> for ws://; the SAP approuter checks it)')
            [CompletionResult]::new('--subprotocol', '--subprotocol', [CompletionResultType]::ParameterName, 'Offer this subprotocol (repeatable); the report shows what the server picked')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file instead of the built-in Mozilla roots')
            [CompletionResult]::new('--connect-to', '--connect-to', [CompletionResultType]::ParameterName, 'Connect to HOST2:PORT2 instead of HOST1:PORT1 (curl semantics; Host and SNI stay the route''s). Empty parts match any host/port or keep the original. Repeatable')
            [CompletionResult]::new('--resolve', '--resolve', [CompletionResultType]::ParameterName, 'Use ADDR for HOST:PORT instead of DNS (curl semantics). Repeatable')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Time limit of one probe, all stages together')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Time limit of each of DNS, TCP connect and TLS handshake')
            [CompletionResult]::new('--instance', '--instance', [CompletionResultType]::ParameterName, 'Target one app instance with `X-Cf-App-Instance: APP_GUID:INDEX` (`cf app APP --guid`)')
            [CompletionResult]::new('-x', '-x', [CompletionResultType]::ParameterName, 'Tunnel through this HTTP proxy with CONNECT: http://[user:pass@]host:port. Overrides wss_proxy, https_proxy, HTTPS_PROXY, ws_proxy, http_proxy from the environment')
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'Tunnel through this HTTP proxy with CONNECT: http://[user:pass@]host:port. Overrides wss_proxy, https_proxy, HTTPS_PROXY, ws_proxy, http_proxy from the environment')
            [CompletionResult]::new('--noproxy', '--noproxy', [CompletionResultType]::ParameterName, 'Hosts that bypass the proxy, comma-separated (overrides no_proxy / NO_PROXY)')
            [CompletionResult]::new('--no-origin', '--no-origin', [CompletionResultType]::ParameterName, 'Send no Origin header')
            [CompletionResult]::new('-k', '-k', [CompletionResultType]::ParameterName, 'Do not verify TLS certificates (the report still says what was wrong with them)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Do not verify TLS certificates (the report still says what was wrong with them)')
            [CompletionResult]::new('--allow-plaintext-credentials', '--allow-plaintext-credentials', [CompletionResultType]::ParameterName, 'Send Authorization, Cookie and user:pass@ also over plaintext ws:// (never by default)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'wscheck;app' {
            [CompletionResult]::new('--manifest', '--manifest', [CompletionResultType]::ParameterName, 'The manifest to read instead of DIR/manifest.yml')
            [CompletionResult]::new('--app', '--app', [CompletionResultType]::ParameterName, 'The app of a multi-app manifest')
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'The WebSocket path (default: the first route''s path, or /)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Report format')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'wscheck;help' {
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Start the bundled echo server behind a local TLS-terminating router on loopback, probe it as a route, and print the report: what `wscheck <route>` shows on CF')
            [CompletionResult]::new('load', 'load', [CompletionResultType]::ParameterValue, 'Load a route: N concurrent WebSockets, echoed messages closed-loop or at a rate (or held idle with --rate 0); connections achieved, messages/s, latency percentiles, errors by kind; every echo checked. Exit 0 when nothing was lost')
            [CompletionResult]::new('app', 'app', [CompletionResultType]::ParameterValue, 'Check your own app the way Cloud Foundry will run it, before `cf push`: start it from its manifest with CF''s environment and a free $PORT, run CF''s health check, read where it listens, probe its WebSocket directly and through a local gorouter stand-in, stop it with SIGTERM. Exit 0 when it would pass the health check and its WebSocket works through the router')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wscheck;help;demo' {
            break
        }
        'wscheck;help;load' {
            break
        }
        'wscheck;help;app' {
            break
        }
        'wscheck;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
