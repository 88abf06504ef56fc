package smartpay

import (
	"net/http"
	"sort"
	"time"

	"github.com/gorilla/mux"
)

// xlsxContentType is the content type of the transaction-list result.
const xlsxContentType = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

// exportTask is one transaction-list download task. Its rows are taken when
// the task is created, so the result does not change afterwards.
type exportTask struct {
	id       string
	merchant string
	status   status
	created  time.Time
	rows     [][]xlsxCell
}

var exportTypes = map[string]bool{typePayment: true, typeWithdrawal: true, typeRefund: true}

// exportHeader names the columns of the result sheet.
var exportHeader = []string{"Order ID", "Transaction ID", "Type", "Status", "Amount", "Currency", "Card", "Card type", "Created", "End date", "Error"}

// exportCreate: POST /aggregation-service/public/transaction/excel — a task
// listing the merchant's transactions of one type and status created between
// dateFrom and dateTo (Unix milliseconds, both inclusive). The task starts in
// status 1.
func (s *Sandbox) exportCreate(r *http.Request, merchant string) (any, error) {
	var req exportTaskRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	var p problems
	p.check("type", exportTypes[req.Type])
	p.check("status", req.Status != nil && (*req.Status == statusFail || *req.Status == statusProcessing || *req.Status == statusSuccess))
	p.check("dateFrom", req.DateFrom != nil && *req.DateFrom >= 0)
	p.check("dateTo", req.DateTo != nil && *req.DateTo >= 0)
	if req.DateFrom != nil && req.DateTo != nil && *req.DateFrom > *req.DateTo {
		p.add("dateTo")
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	from, to := int64(*req.DateFrom), int64(*req.DateTo)

	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.merchants[merchant]
	var picked []*txn
	for _, t := range m.orders {
		ms := t.created.UnixMilli()
		if t.typ == req.Type && t.status == *req.Status && ms >= from && ms <= to {
			picked = append(picked, t)
		}
	}
	sort.Slice(picked, func(i, j int) bool {
		if !picked[i].created.Equal(picked[j].created) {
			return picked[i].created.Before(picked[j].created)
		}
		return picked[i].orderID < picked[j].orderID
	})
	task := &exportTask{id: newID(), merchant: m.key, status: statusProcessing, created: s.opts.Now()}
	for _, t := range picked {
		task.rows = append(task.rows, exportRow(t))
	}
	s.tasks[task.id] = task
	return exportTaskResponse{ID: task.id, Status: task.status}, nil
}

// exportRow is one sheet row: masked card only.
func exportRow(t *txn) []xlsxCell {
	card, cardType, end := "", "", ""
	if t.card != nil {
		card, cardType = t.card.Number, t.card.Type
	}
	if !t.ended.IsZero() {
		end = formatTime(t.ended)
	}
	return []xlsxCell{
		textCell(t.orderID), textCell(t.id), textCell(t.typ), numCell(int64(t.status)),
		numCell(t.charged()), textCell(t.currency), textCell(card), textCell(cardType),
		textCell(formatTime(t.created)), textCell(end), textCell(t.errorMessage),
	}
}

// task finds the merchant's task named in the path. s.mu held.
func (s *Sandbox) task(r *http.Request, merchant string) (*exportTask, error) {
	t := s.tasks[mux.Vars(r)["taskId"]]
	if t == nil || t.merchant != merchant {
		return nil, &apiError{status: http.StatusNotFound, code: codeTaskNotFound, msg: "task not found"}
	}
	return t, nil
}

// exportStatus: GET …/excel/task/{taskId}. A task is complete (status 2) from
// its first status poll on.
func (s *Sandbox) exportStatus(r *http.Request, merchant string) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.task(r, merchant)
	if err != nil {
		return nil, err
	}
	t.status = statusSuccess
	return exportTaskResponse{ID: t.id, Status: t.status}, nil
}

// exportResult: GET …/excel/task/{taskId}/result — the xlsx document, once the
// task is complete.
func (s *Sandbox) exportResult(r *http.Request, merchant string) (any, error) {
	s.mu.Lock()
	t, err := s.task(r, merchant)
	var rows [][]xlsxCell
	var created time.Time
	if err == nil {
		rows, created = t.rows, t.created
		if t.status != statusSuccess {
			err = &apiError{status: http.StatusConflict, code: codeTaskNotReady, msg: "task is not complete; poll its status first"}
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	b, err := buildXLSX("Transactions", exportHeader, rows, created)
	if err != nil {
		return nil, err
	}
	return &fileResponse{contentType: xlsxContentType, filename: "transactions-" + t.id + ".xlsx", body: b}, nil
}
