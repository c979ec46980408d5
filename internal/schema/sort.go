package schema

import "slices"

func sortByName(list []Schema) {
	slices.SortFunc(list, func(a, b Schema) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
}
