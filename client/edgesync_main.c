//  edgesync - command line client of edgesyncd (see es_cli.c).
#include "client/es_cli.h"

int
main(int argc, char *argv[])
{
    return es_cli_run(argc, argv);
}
