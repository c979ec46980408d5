package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
)

func queryNoun() *noun {
	c := &command{
		path: "query", args: "QUERY", nargs: 1,
		summary: "query device twins with IoT Hub's query language",
		help: `SELECT * | fields | COUNT() FROM devices | devices.modules [WHERE ...] [GROUP BY ...]
[ORDER BY field [ASC|DESC], ...] over deviceId, status, connectionState,
lastActivityTime, modelId, tags.*, properties.desired.*, properties.reported.*;
operators = != < <= > >= AND OR NOT IN NIN, functions IS_DEFINED, IS_NULL,
STARTS_WITH, ENDS_WITH. Results reflect every acknowledged write. Without
ORDER BY, rows come by deviceId; ties in ORDER BY go by deviceId. Devices
without a field sort first ascending, last descending. --all pages through
with the hub's continuation tokens, which hold their place in the order.

Examples:
  ferry query "SELECT * FROM devices WHERE tags.site = 'A'"
  ferry query "SELECT deviceId, properties.reported.temp FROM devices WHERE properties.reported.temp > 30"
  ferry query "SELECT COUNT() AS n, status FROM devices GROUP BY status"
  ferry query --all "SELECT deviceId, lastActivityTime FROM devices ORDER BY lastActivityTime DESC"`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			top := fs.Int("top", 100, "results per page")
			all := fs.Bool("all", false, "read every page")
			return func(ctx context.Context, e *env, args []string) error {
				client, err := e.client(&hf)
				if err != nil {
					return err
				}
				var items []json.RawMessage
				next := ""
				for {
					page, cont, err := client.Query(ctx, args[0], *top, next)
					if err != nil {
						return err
					}
					items = append(items, page...)
					if cont == "" {
						break
					}
					if !*all {
						fmt.Fprintln(e.stderr, "more results exist: add --all to read them")
						break
					}
					next = cont
				}
				if items == nil {
					items = []json.RawMessage{}
				}
				return writeJSON(e.stdout, items)
			}
		},
	}
	return &noun{name: "query", summary: c.summary, cmd: c}
}
