//  es_cli - the edgesync command line: argument parsing, endpoint resolution, progress display.
#ifndef ES_CLI_H
#define ES_CLI_H

//  Exit codes of the edgesync command.
#define ES_CLI_OK 0          //  success (including partial success with syncErrors)
#define ES_CLI_FAILED 1      //  the sync or request failed
#define ES_CLI_USAGE 2       //  bad arguments, options JSON, @FILE or configuration
#define ES_CLI_UNREACHABLE 3 //  daemon not running, not answering, or broke the protocol
#define ES_CLI_INTERRUPTED 130

//  Run the edgesync command with its arguments; returns the exit code.
int es_cli_run(int argc, char *argv[]);

#endif
