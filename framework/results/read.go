package results

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/onsi/ginkgo/v2/types"
)

// ReadReport reads the suite report WriteBundle left in dir (report.json): Ginkgo's JSON
// report, which holds one suite.
func ReadReport(dir string) (types.Report, error) {
	path := filepath.Join(dir, ReportFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return types.Report{}, err
	}
	var reports []types.Report
	if err := json.Unmarshal(b, &reports); err != nil {
		return types.Report{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(reports) != 1 {
		return types.Report{}, fmt.Errorf("%s: holds %d suite reports, want 1", path, len(reports))
	}
	return reports[0], nil
}
